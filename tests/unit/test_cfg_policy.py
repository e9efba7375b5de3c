"""Whether a request gets classifier-free guidance, and what its answer says when it does not."""

from __future__ import annotations

import pytest

from pi_axera_sd.defaults import MAX_CFG_SCALE
from pi_axera_sd.engine.cfg_policy import OFF, decide_cfg


def test_off_by_default_says_what_was_ignored():
    decision = decide_cfg(7.0, "blurry", enabled=False, max_scale=MAX_CFG_SCALE)
    assert (decision.scale, decision.negative_prompt) == (OFF, "")
    (warning,) = decision.warnings
    assert warning.startswith("cfg_scale 7 and the negative prompt ignored")
    assert "override_settings" in warning


@pytest.mark.parametrize(
    ("requested", "negative", "ignored"),
    [(None, "", None), (1.0, "", None), (None, "blurry", "the negative prompt"), (3.0, " ", "cfg_scale 3")],
)
def test_off_names_only_what_the_client_sent(requested, negative, ignored):
    decision = decide_cfg(requested, negative, enabled=False, max_scale=2.0, default=7.0)
    assert decision.scale == OFF
    assert [w.split(" ignored")[0] for w in decision.warnings] == ([ignored] if ignored else [])


def test_on_uses_the_scale_and_the_negative_prompt():
    decision = decide_cfg(1.5, "blurry", enabled=True, max_scale=2.0)
    assert (decision.scale, decision.negative_prompt, decision.warnings) == (1.5, "blurry", ())


def test_on_caps_the_scale_and_says_so_only_when_it_was_sent():
    sent = decide_cfg(7.0, "", enabled=True, max_scale=2.0)
    assert sent.scale == 2.0 and "cfg_scale 7 lowered to 2" in sent.warnings[0]
    implied = decide_cfg(None, "", enabled=True, max_scale=2.0, default=7.0)  # A1111's default
    assert implied.scale == 2.0 and implied.warnings == ()


def test_on_with_scale_one_is_no_guidance():
    decision = decide_cfg(1.0, "blurry", enabled=True, max_scale=2.0)
    assert decision.scale == OFF and decision.negative_prompt == ""
    assert "needs a cfg_scale above 1" in decision.warnings[0]
    assert decide_cfg(None, "", enabled=True, max_scale=2.0).scale == OFF
