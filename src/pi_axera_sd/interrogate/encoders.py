"""CLIP image and text towers as runtime sessions, giving L2-normalised projected embeddings.

A tower may output projected embeddings (our default export), un-projected features with the
projection applied here on the CPU (the prior NPU layout), or, for text, every hidden state, from
which the state at the EOS token is taken here. The EOS token is CLIP's highest id, so its
position is the argmax of the ids, as in OpenAI's CLIP.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from pi_axera_sd.engine.tokenizer import ClipTokenizer
from pi_axera_sd.errors import ModelError
from pi_axera_sd.interrogate.preprocess import ImageSpec, clip_pixels
from pi_axera_sd.runtime.base import Session, TensorSpec

log = logging.getLogger(__name__)

_VISION_OUTPUTS = ("image_embeds", "pooler_output")
_TEXT_OUTPUTS = ("text_embeds", "pooler_output", "last_hidden_state")
DEFAULT_TEXT_BATCH = 64


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))


def load_projection(path: Path) -> np.ndarray:
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable projection matrix: {exc}") from exc
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
        raise ModelError(
            f"{path}: a projection must be a 2-D float matrix, got {matrix.shape} {matrix.dtype}"
        )
    return np.ascontiguousarray(matrix, dtype=np.float32)


def orient_projection(matrix: np.ndarray, features: int, source: str) -> np.ndarray:
    """The matrix as ``[features, dim]``. Stored as ``[in, out]`` (OpenAI's convention); a
    non-square ``[out, in]`` matrix (torch Linear's weight) is transposed."""
    if matrix.shape[0] == features:
        return matrix
    if matrix.shape[1] == features:
        return np.ascontiguousarray(matrix.T)
    raise ModelError(f"{source}: projection {matrix.shape} does not fit the tower's {features} features")


def _pick_output(session: Session, preferred: Sequence[str]) -> TensorSpec:
    for name in preferred:
        for spec in session.outputs:
            if spec.name == name:
                return spec
    return session.outputs[0]


def _static(dim: object) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


class ImageEncoder:
    """One image -> a unit-length CLIP image embedding."""

    def __init__(self, session: Session, spec: ImageSpec, projection: np.ndarray | None = None) -> None:
        if len(session.inputs) != 1:
            raise ModelError(f"{session.path}: the image tower must take one input (pixel_values)")
        self.session = session
        self._input = session.inputs[0]
        self._output = _pick_output(session, _VISION_OUTPUTS)
        shape = self._input.shape
        if len(shape) != 4 or _static(shape[1]) not in (None, 3):
            raise ModelError(f"{session.path}: expected pixel_values [N,3,H,W], got {self._input.describe()}")
        graph_hw = (_static(shape[2]), _static(shape[3]))
        if None not in graph_hw and graph_hw != (spec.crop_height, spec.crop_width):
            raise ModelError(
                f"{session.path}: takes {graph_hw[0]}x{graph_hw[1]} images but the manifest says "
                f"{spec.crop_height}x{spec.crop_width}"
            )
        self.spec = spec
        features = _static(self._output.shape[-1]) if self._output.shape else None
        if projection is not None and features is not None:
            projection = orient_projection(projection, features, str(session.path))
        self.projection = projection
        self.dim = (projection.shape[1] if projection is not None else features) or None

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """``[1, 3, H, W]`` float32 -> ``[D]`` unit vector."""
        out = self.session.run({self._input.name: pixels}, [self._output.name])[0]
        out = np.asarray(out, dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != 1:
            raise ModelError(
                f"{self.session.path}: expected a pooled image output [1, D], got {out.shape}; "
                "export the pooled or projected output"
            )
        if self.projection is not None:
            out = out @ orient_projection(self.projection, out.shape[1], str(self.session.path))
        return l2_normalise(out)[0]

    def encode(self, image: Image.Image) -> np.ndarray:
        return self.encode_pixels(clip_pixels(image, self.spec))


class TextEncoder:
    """Texts -> unit-length CLIP text embeddings, batched as the graph allows.

    The batch is the graph's fixed batch dimension (an NPU model: usually 1) or ``batch_size`` when
    the axis is dynamic. When the sequence axis is dynamic too, each batch is cut after its last
    EOS token: with CLIP's causal attention the EOS state never sees later positions, so the
    result is the same and short labels cost a fraction of 77 tokens.
    """

    def __init__(
        self,
        session: Session,
        tokenizer: ClipTokenizer,
        projection: np.ndarray | None = None,
        batch_size: int = DEFAULT_TEXT_BATCH,
    ) -> None:
        names = set(session.input_names)
        if "input_ids" not in names or not names <= {"input_ids", "attention_mask"}:
            raise ModelError(
                f"{session.path}: the text tower must take input_ids (and optionally attention_mask), "
                f"not {sorted(names)}"
            )
        self.session = session
        self.tokenizer = tokenizer
        ids_spec = session.input("input_ids")
        if len(ids_spec.shape) != 2:
            raise ModelError(f"{session.path}: expected input_ids [N, L], got {ids_spec.describe()}")
        self.fixed_batch = _static(ids_spec.shape[0])
        self.fixed_length = _static(ids_spec.shape[1])
        if self.fixed_length is not None and self.fixed_length != tokenizer.max_length:
            raise ModelError(
                f"{session.path}: takes {self.fixed_length} tokens, "
                f"the tokenizer makes {tokenizer.max_length}"
            )
        self.batch = self.fixed_batch or max(1, int(batch_size))
        self._output = _pick_output(session, _TEXT_OUTPUTS)
        features = _static(self._output.shape[-1]) if self._output.shape else None
        if projection is not None and features is not None:
            projection = orient_projection(projection, features, str(session.path))
        self.projection = projection
        self.dim = (projection.shape[1] if projection is not None else features) or None

    def _run(self, ids: np.ndarray) -> np.ndarray:
        """One graph run on at most ``self.batch`` rows -> ``[n, D]`` raw features."""
        n = ids.shape[0]
        eos = ids.argmax(axis=1)
        if self.fixed_length is None:
            ids = ids[:, : int(eos.max()) + 1]
        if self.fixed_batch is not None and n < self.fixed_batch:
            ids = np.concatenate([ids, np.repeat(ids[-1:], self.fixed_batch - n, axis=0)])
        feeds = {"input_ids": ids}
        if "attention_mask" in self.session.input_names:
            positions = np.arange(ids.shape[1])[None, :]
            eos_all = ids.argmax(axis=1)[:, None]
            feeds["attention_mask"] = (positions <= eos_all).astype(np.int64)
        out = np.asarray(self.session.run(feeds, [self._output.name])[0], dtype=np.float32)[:n]
        if out.ndim == 3:  # every hidden state: take the one at each EOS token
            out = out[np.arange(n), eos]
        if out.ndim != 2:
            raise ModelError(f"{self.session.path}: unexpected text output shape {out.shape}")
        return out

    def encode_ids(self, ids: np.ndarray) -> np.ndarray:
        """Token ids ``[N, L]`` -> ``[N, D]`` unit vectors."""
        chunks = [self._run(ids[start : start + self.batch]) for start in range(0, len(ids), self.batch)]
        features = np.concatenate(chunks, axis=0) if chunks else np.zeros((0, self.dim or 0), np.float32)
        if self.projection is not None:
            features = features @ orient_projection(
                self.projection, features.shape[1], str(self.session.path)
            )
        return l2_normalise(features)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> ``[N, D]`` unit vectors."""
        if not texts:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        return self.encode_ids(self.tokenizer.encode_batch(list(texts)))
