"""Whether a request gets classifier-free guidance, and at what scale: one decision, with the sentence
that tells the client when its ``cfg_scale`` or negative prompt was not followed as sent.

LCM models are distilled to work at CFG 1 (one UNet run per step), which is the service's default.
Real guidance doubles the UNet's work and is opted into by a setting or per request; its scale is
capped (LCM's images degrade above about 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

OFF = 1.0  # a cfg_scale of 1 is no guidance: the negative prompt then has no effect


@dataclass(frozen=True)
class CfgDecision:
    scale: float  # what the sampler uses (1.0: off)
    negative_prompt: str  # what it uses ("" when off)
    warnings: tuple[str, ...] = field(default=())


def decide_cfg(
    requested: float | None,
    negative_prompt: str,
    *,
    enabled: bool,
    max_scale: float,
    default: float = OFF,
) -> CfgDecision:
    """``requested``: the client's cfg_scale (None: it sent none, and ``default``, its dialect's, is
    meant: A1111's is 7). ``enabled``: the ``cfg`` setting or the request's override. Only what the
    client sent is reported as not followed."""
    sent = requested is not None
    asked = float(requested) if requested is not None else default
    if not enabled:
        ignored = []
        if sent and asked > OFF:
            ignored.append(f"cfg_scale {asked:g}")
        if negative_prompt.strip():
            ignored.append("the negative prompt")
        if not ignored:
            return CfgDecision(OFF, "")
        return CfgDecision(
            OFF,
            "",
            (
                f"{' and '.join(ignored)} ignored: classifier-free guidance is off (CFG 1, one UNet run "
                "per step, as LCM is meant to run); turn it on with the cfg setting or "
                'override_settings {"cfg": true}',
            ),
        )
    if asked <= OFF:
        note = (
            ()
            if not negative_prompt.strip()
            else (
                f"the negative prompt ignored: cfg_scale {asked:g} is no guidance "
                "(it needs a cfg_scale above 1)",
            )
        )
        return CfgDecision(OFF, "", note)
    if asked > max_scale and not sent:
        return CfgDecision(max_scale, negative_prompt)
    if asked > max_scale:
        return CfgDecision(
            max_scale,
            negative_prompt,
            (
                f"cfg_scale {asked:g} lowered to {max_scale:g}, the service's max_cfg_scale "
                "(LCM degrades above it)",
            ),
        )
    return CfgDecision(asked, negative_prompt)
