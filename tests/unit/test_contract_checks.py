"""The model contract's checks (engine.contract_checks) against session-like stand-ins: one that
fits per component, one that breaks it per kind of problem; and ``verify`` listing several at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from pi_axera_sd.engine.contract import (
    AXERA_TIME_INPUT,
    DEEP_FEATURE,
    GUIDANCE_INPUT,
    TEXT_ENCODER,
    TIME_INPUT_TXT2IMG,
    UNET,
    UNET_SHALLOW,
    VAE_DECODER,
    VAE_ENCODER_TINY,
)
from pi_axera_sd.engine.contract_checks import (
    ModelFacts,
    check_deepcache_pair,
    check_guidance,
    check_sessions,
    check_text_encoder,
    check_time_rows,
    check_tiny_decoder,
    check_tiny_encoder,
    check_token_ids,
    check_tokenizer_files,
    check_unet,
    check_vae_decoder,
    check_vae_encoder,
    tokenizer_form,
)
from pi_axera_sd.errors import MISMATCH, MISSING, Problem
from pi_axera_sd.runtime.base import TensorSpec

F32, I64 = np.dtype(np.float32), np.dtype(np.int64)


def spec(name: str, shape: tuple, dtype: np.dtype = F32) -> TensorSpec:
    return TensorSpec(name, shape, dtype)


@dataclass
class FakeSession:
    path: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = field(default_factory=tuple)


def text_encoder(width: int = 32, ids: TensorSpec | None = None) -> FakeSession:
    ids = ids or spec("input_ids", (1, 77), I64)
    return FakeSession(Path("te.onnx"), (ids,), (spec("last_hidden_state", (1, 77, width)),))


def unet(
    *,
    hidden: int = 32,
    time: TensorSpec | None = None,
    guidance: TensorSpec | None = None,
    out: tuple = (1, 4, 16, 16),
) -> FakeSession:
    inputs = [
        spec("sample", (1, 4, 16, 16)),
        spec(AXERA_TIME_INPUT, (1, 128)) if time is None else time,
        spec("encoder_hidden_states", (1, 77, hidden)),
    ]
    if guidance is not None:
        inputs.append(guidance)
    return FakeSession(Path("unet.onnx"), tuple(inputs), (spec("out_sample", out),))


def decoder(latent: tuple = (1, 4, 16, 16), image: tuple = (1, 3, 128, 128), name: str = "vae_decoder"):
    return FakeSession(Path(f"{name}.onnx"), (spec("x", latent),), (spec("image", image),))


def encoder(image: tuple = (1, 3, 128, 128), moments: tuple = (1, 8, 16, 16)) -> FakeSession:
    return FakeSession(Path("vae_encoder.onnx"), (spec("image_sample", image),), (spec("moments", moments),))


def checked_facts() -> ModelFacts:
    """The facts a fitting text encoder and AXERA UNet leave for the later checks."""
    facts = ModelFacts()
    assert check_text_encoder(text_encoder(), facts) == [] and check_unet(unet(), facts) == []
    return facts


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


# ---- text encoder -------------------------------------------------------------------------------


def test_text_encoder_fits_and_tells_its_width():
    facts = ModelFacts()
    assert check_text_encoder(text_encoder(48), facts) == []
    assert facts.text_width == 48


@pytest.mark.parametrize(
    "ids", [spec("input_ids", (1, 77), F32), spec("input_ids", (1, 64), I64), spec("x", (1, 77, 4), I64)]
)
def test_text_encoder_with_wrong_ids(ids):
    problem = only(check_text_encoder(text_encoder(ids=ids), ModelFacts()))
    assert (problem.component, problem.file, problem.kind) == ("text_encoder", "te.onnx", MISMATCH)
    assert "input_ids [1,77] int32/int64" in problem.expected and ids.describe() in problem.found
    assert str(problem).startswith("te.onnx: expected a CLIP text encoder: ")


# ---- UNet ---------------------------------------------------------------------------------------


def test_axera_unet_fits_and_tells_latent_and_time_input():
    facts = checked_facts()
    assert facts.latent == (4, 16, 16) and facts.takes_embedding is True and facts.time_width == 128
    assert facts.unet is not None and facts.unet.time.name == AXERA_TIME_INPUT


def test_plain_timestep_unet_fits():
    facts = ModelFacts(text_width=32)
    assert check_unet(unet(time=spec("timestep", (1,), I64)), facts) == []
    assert facts.takes_embedding is False and facts.time_input == "timestep timestep [1]"


def test_unet_without_its_roles_is_not_an_sd_unet():
    problem = only(check_unet(text_encoder(), ModelFacts()))
    assert problem.component == "unet" and "not an SD UNet signature" in problem.message
    assert "input_ids" in problem.found


def test_unet_from_another_model_than_the_text_encoder():
    facts = ModelFacts(text_width=48)
    problem = only(check_unet(unet(hidden=32), facts))
    assert problem.detail.startswith("encoder_hidden_states width 32 != the text encoder's 48")
    assert problem.hint == "files from different models"


def test_unet_with_a_matrix_timestep():
    problem = only(check_unet(unet(time=spec("timestep", (1, 1), I64)), ModelFacts()))
    assert problem.found == "timestep [1,1] int64" and "a number" in problem.expected


def test_unet_with_a_wrong_time_embedding():
    problem = only(check_unet(unet(time=spec(AXERA_TIME_INPUT, (2, 3, 128))), ModelFacts()))
    assert problem.expected == "[1,T]" and problem.detail.startswith("time embedding input")


def test_unet_whose_output_is_not_the_latent():
    problem = only(check_unet(unet(out=(1, 3, 128, 128)), ModelFacts()))
    assert problem.expected == "noise prediction [1,4,16,16]"


# ---- guidance ------------------------------------------------------------------------------------


def test_guidance_embedding_fits_with_a_fixed_or_configured_width():
    facts = ModelFacts()
    assert check_guidance(unet(guidance=spec(GUIDANCE_INPUT, (1, 256))), facts) == []
    assert facts.guidance_width == 256
    dynamic = unet(guidance=spec(GUIDANCE_INPUT, ("batch", "w")))
    assert check_guidance(dynamic, facts, dim=64) == [] and facts.guidance_width == 64


def test_guidance_embedding_problems():
    wrong = only(check_guidance(unet(guidance=spec(GUIDANCE_INPUT, (1, 256), I64)), ModelFacts()))
    assert wrong.expected == "[1,W] float" and wrong.component == "unet"
    unknown = only(check_guidance(unet(guidance=spec(GUIDANCE_INPUT, (1, "w"))), ModelFacts()))
    assert "time_cond_proj_dim" in unknown.message and unknown.hint == "unet/config.json"
    # the UNet's check includes it
    assert check_unet(unet(guidance=spec(GUIDANCE_INPUT, (1, 1))), ModelFacts()) != []


# ---- VAE ----------------------------------------------------------------------------------------


def test_vae_decoder_fits_and_tells_the_image_size():
    facts = checked_facts()
    assert check_vae_decoder(decoder(), facts) == [] and facts.image == (128, 128)


def test_vae_decoder_problems():
    facts = checked_facts()
    wrong = only(check_vae_decoder(text_encoder(), facts))
    assert wrong.detail.startswith("wrong signature: expected latent [1,4,16,16] -> image [1,3,128,128]")
    assert wrong.message.startswith("te.onnx: expected a VAE decoder: ")
    swapped = only(check_vae_decoder(encoder(), facts))  # the encoder's rank-4 input: a size mismatch
    assert swapped.file == "vae_encoder.onnx" and "image_sample [1,3,128,128]" in swapped.found
    other_size = only(check_vae_decoder(decoder((1, 4, 32, 32), (1, 3, 256, 256)), facts))
    assert other_size.detail.startswith("latent size differs from the UNet's")
    two_inputs = FakeSession(Path("d.onnx"), (spec("x", (1, 4, 16, 16)), spec("y", (1,))), ())
    assert only(check_vae_decoder(two_inputs, facts)).component == "vae_decoder"


def test_tiny_decoder_is_checked_like_the_full_one_without_changing_the_facts():
    facts = checked_facts()
    assert check_tiny_decoder(decoder(name="vae_decoder_tiny"), facts) == [] and facts.image is None
    problem = only(check_tiny_decoder(decoder((1, 3, 16, 16), name="vae_decoder_tiny"), facts))
    assert problem.component == "vae_decoder_tiny" and "latent [1,4,16,16]" in problem.expected


def test_vae_encoder_fits_with_moments_or_a_sampled_latent():
    facts = checked_facts()
    assert check_vae_encoder(encoder(), facts) == []
    assert check_vae_encoder(encoder(moments=(1, 4, 16, 16)), facts) == []


def test_vae_encoder_problems():
    facts = checked_facts()
    problem = only(check_vae_encoder(decoder(), facts))
    assert problem.expected == "image [1,3,128,128] -> mean||logvar [1,8,16,16]"
    assert only(check_vae_encoder(encoder(image=(1, 1, 128, 128)), facts)).component == "vae_encoder"


# ---- time rows and tokenizer --------------------------------------------------------------------


def test_time_rows_fit_or_are_unused():
    facts = checked_facts()
    assert check_time_rows(TIME_INPUT_TXT2IMG, np.zeros((4, 128), np.float32), facts, 4) == []
    plain = ModelFacts(takes_embedding=False)
    assert check_time_rows(TIME_INPUT_TXT2IMG, None, plain, 4) == []


def test_time_rows_problems():
    facts = checked_facts()
    missing = only(check_time_rows(TIME_INPUT_TXT2IMG, None, facts, 4))
    assert missing.kind == MISSING and "time_input_txt2img.npy is required" in missing.detail
    narrow = only(check_time_rows(TIME_INPUT_TXT2IMG, np.zeros((4, 64), np.float32), facts, 4))
    assert narrow.expected == "[4+,128] float" and narrow.found == "[4, 64] float32"
    too_few = only(check_time_rows(TIME_INPUT_TXT2IMG, np.zeros((2, 128), np.float32), facts, 4))
    assert too_few.message.startswith("time_input_txt2img.npy has shape [2, 128]; expected [4, 128]")
    ints = only(check_time_rows(TIME_INPUT_TXT2IMG, np.zeros((4, 128), np.int64), facts, 4))
    assert ints.found == "[4, 128] int64"


def test_tokenizer_files_and_ids(tmp_path):
    problem = only(check_tokenizer_files(tmp_path))
    assert problem.kind == MISSING
    assert problem.detail == f"neither tokenizer.json, or vocab.json and merges.txt found in {tmp_path}"
    (tmp_path / "vocab.json").write_text("{}")
    assert check_tokenizer_files(tmp_path) != []  # half a pair
    (tmp_path / "merges.txt").write_text("")
    assert check_tokenizer_files(tmp_path) == [] and tokenizer_form(tmp_path) == "vocab.json + merges.txt"
    (tmp_path / "tokenizer.json").write_text("{}")
    assert tokenizer_form(tmp_path) == "tokenizer.json"  # preferred when both are there
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / name).unlink()
    assert check_tokenizer_files(tmp_path) == []  # what transformers 5 / optimum-intel 2.2 write
    assert check_token_ids(np.zeros(77, np.int64), tmp_path) == []
    assert only(check_token_ids(np.zeros(76, np.int64), tmp_path)).expected == "77 token ids"


def test_check_sessions_runs_every_check_in_order_and_skips_absent_ones():
    facts = ModelFacts()
    sessions = {"text_encoder": text_encoder(48), "unet": unet(hidden=32), "vae_decoder": None}
    (problem,) = check_sessions({**sessions, "vae_encoder": encoder()}, facts)
    assert problem.component == "unet" and facts.text_width == 48  # the text width reached the UNet
    assert facts.image is None  # no decoder: the encoder was checked against the UNet's latent alone
    assert check_sessions({}, ModelFacts()) == []


# ---- verify lists them all ----------------------------------------------------------------------


def test_verify_lists_every_problem_of_a_row(tmp_path, monkeypatch):
    """A UNet with three problems at once: verify's row lists all three, the engine names the first."""
    from pi_axera_sd.engine.pipeline import _check_components
    from pi_axera_sd.errors import ModelError
    from pi_axera_sd.modeltools import verify

    sessions = {
        "sd15_text_encoder_sim.onnx": text_encoder(48),
        "unet.onnx": unet(hidden=32, guidance=spec(GUIDANCE_INPUT, (1, 1)), out=(1, 3, 16, 16)),
        "vae_decoder.onnx": decoder(),
    }
    for name in sessions:
        (tmp_path / name).write_bytes(b"")
    np.save(tmp_path / "time_input_txt2img.npy", np.zeros((4, 128), np.float32))

    class Opened(FakeSession):
        runtime, provider = "fake", "CPUExecutionProvider"

    def fake_open(path, options):
        s = sessions[Path(path).name]
        return Opened(Path(path), s.inputs, s.outputs)

    monkeypatch.setattr(verify, "open_session", fake_open)
    rows = {r.component: r for r in verify.verify_model(tmp_path).rows}
    problems = rows["unet"].problems
    assert rows["unet"].state == MISMATCH and len(problems) == 3, problems
    assert problems[0].startswith("encoder_hidden_states width 32 != the text encoder's 48")
    assert problems[1].startswith("guidance embedding input") and problems[2].startswith("noise prediction")
    assert rows["text_encoder"].ok and rows["vae_decoder"].ok

    with pytest.raises(ModelError) as err:
        _check_components(
            dict(zip((TEXT_ENCODER, UNET, VAE_DECODER), sessions.values(), strict=True)),
            None,
            np.zeros((4, 128), np.float32),
            4,
            None,
        )
    assert str(err.value) == str(err.value.problems[0]) and len(err.value.problems) == 3
    assert all(isinstance(p, Problem) for p in err.value.problems)


def test_missing_files_are_structured_problems_too(tmp_path):
    """``check_layout``'s error carries a problem per missing file, so ``pull`` reports them without
    taking the message apart."""
    from pi_axera_sd.engine.layout import check_layout, missing_files_message, resolve_layout
    from pi_axera_sd.errors import ModelError

    layout = resolve_layout(tmp_path)
    with pytest.raises(ModelError) as err:
        check_layout(layout)
    problems = err.value.problems
    assert [p.component for p in problems] == ["text_encoder", "unet", "vae_decoder"]
    assert all(p.kind == MISSING and p.found == "no file" for p in problems)
    assert problems[1].detail == f"UNet {tmp_path / 'unet.onnx'} (.onnx or .axmodel)"
    listed = missing_files_message(layout, problems)
    assert listed.startswith(f"model files missing in {tmp_path} (layout tried: ")
    assert listed in str(err.value)


def test_tiny_encoder_gives_the_unets_latent_itself():
    """TAESD's encoder returns the latent (4 channels), not mean||logvar (8): a full encoder named
    vae_encoder_tiny is refused, and check_sessions runs the check."""
    facts = ModelFacts()
    assert check_sessions({UNET: unet()}, facts) == []
    image = spec("image_sample", (1, 3, 128, 128))
    tiny = FakeSession(Path("vae_encoder_tiny.onnx"), (image,), (spec("latent", (1, 4, 16, 16)),))
    assert check_tiny_encoder(tiny, facts) == []
    full = FakeSession(Path("vae_encoder_tiny.onnx"), (image,), (spec("moments", (1, 8, 16, 16)),))
    problem = only(check_sessions({UNET: unet(), VAE_ENCODER_TINY: full}, ModelFacts()))
    assert problem.component == VAE_ENCODER_TINY and "TAESD encoder" in problem.message


def test_deepcache_pair_needs_the_feature_and_matching_inputs():
    deep_unet = unet()
    deep = FakeSession(
        Path("unet_deep.onnx"), deep_unet.inputs, (*deep_unet.outputs, spec(DEEP_FEATURE, (1, 64, 16, 16)))
    )
    shallow = FakeSession(
        Path("unet_shallow.onnx"), (*deep_unet.inputs, spec(DEEP_FEATURE, (1, 64, 16, 16))), deep_unet.outputs
    )
    assert check_deepcache_pair(deep, shallow) == []
    no_feature = only(check_deepcache_pair(deep_unet, shallow))
    assert DEEP_FEATURE in no_feature.expected
    stale = FakeSession(Path("unet_shallow.onnx"), deep_unet.inputs, deep_unet.outputs)
    problem = only(check_deepcache_pair(deep, stale))
    assert problem.component == UNET_SHALLOW and "--deep-cache" in problem.hint
