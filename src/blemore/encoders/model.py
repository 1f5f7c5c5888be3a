"""What every model encoder shares: device, precision, the choice of layers, the frames it asks for.

:class:`ModelEncoder` is the base of the model encoders of every family (``transformers``
models in :mod:`blemore.encoders.hf`, checkpoints loaded by other modules): it moves the
model to its device, chooses the hidden states (``hidden_states[0]`` the input embedding,
``hidden_states[i]`` block ``i``; a range ``a-b`` their mean), runs the forward pass under
the chosen :data:`~blemore.encoders.base.Precision`, and asks the decoder for the frames a
video model sees (:func:`~blemore.encoders.facecrop.model_video_spec`). Blocks after the last
one needed can be dropped (:func:`truncate_blocks`; the same states, less work).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from blemore.encoders.base import Encoder, Precision, check_precision
from blemore.encoders.facecrop import FaceCrop, model_video_spec
from blemore.errors import BlemoreError

__all__ = [
    "ModelEncoder",
    "effective_precision",
    "layer_name",
    "layer_range",
    "resolve_device",
    "split_rows",
    "truncate_blocks",
]


def resolve_device(device: str):
    """``"cpu"``, ``"cuda"``, ``"cuda:1"`` -> torch.device; BlemoreError if CUDA is wanted but absent."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BlemoreError(
                f"--device {device}: no CUDA device is available (torch {torch.__version__}); use --device cpu"
            )
    elif device != "cpu":
        raise BlemoreError(f"--device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")
    return torch.device(device)


def effective_precision(precision: str, device_type: str) -> str:
    """``"auto"`` -> ``"bf16"`` on CUDA, ``"fp32"`` elsewhere; ``"fp32"`` / ``"bf16"`` as given."""
    if check_precision(precision) == "auto":
        return "bf16" if device_type == "cuda" else "fp32"
    return precision


def layer_range(layers, n_layers: int, spec_name: str) -> tuple[int, int]:
    """The first and last hidden state a layer choice averages (``None`` / ``"last"``: the last block)."""
    if layers is None or layers == "last":
        return n_layers, n_layers
    first, last = layers
    if last > n_layers:
        raise BlemoreError(
            f"encoder {spec_name!r}: layer {last} does not exist (the model has hidden states 0-{n_layers})"
        )
    return first, last


def layer_name(first: int, last: int) -> str:
    """``"12"`` or ``"6-12"``: the layer part of a store folder's name."""
    return str(first) if first == last else f"{first}-{last}"


def truncate_blocks(model, keep: int) -> None:
    """Keep the first ``keep`` transformer blocks of ``model`` (later blocks are not needed)."""
    import torch

    for path in ("encoder.layers", "encoder.layer", "vision_model.encoder.layers"):
        owner = model
        *parents, attr = path.split(".")
        try:
            for p in parents:
                owner = getattr(owner, p)
            blocks = getattr(owner, attr)
        except AttributeError:
            continue
        if isinstance(blocks, torch.nn.ModuleList):
            if keep < len(blocks):
                setattr(owner, attr, torch.nn.ModuleList(list(blocks)[:keep]))
            return
    # an unknown layout: run the whole model (same result, more work)


class ModelEncoder(Encoder):
    """The shared part of the model encoders: device, precision, layer choice, frames, pixels.

    A subclass builds its model and calls :meth:`setup_model`; a video model sets
    ``image_size`` and calls :meth:`setup_frames`.
    """

    def setup_model(self, model, *, base_name: str, model_id: str, revision: str | None, layers,
               device: str, batch_size: int, n_layers: int, precision: Precision) -> None:
        import torch

        self.torch = torch
        self.device = resolve_device(device)
        self.precision = effective_precision(precision, self.device.type)
        self.first, self.last = layer_range(layers, n_layers, base_name)
        self.layer = layer_name(self.first, self.last)
        self.n_layers = n_layers
        self.model_id = model_id
        self.revision = getattr(model.config, "_commit_hash", None) or revision or ""
        self.batch_size = batch_size
        suffix = f"-l{self.layer}"
        self.name = f"{base_name}{suffix}"
        self.model = model.eval().to(self.device)
        self.dim = int(model.config.hidden_size)

    def autocast(self):
        """bf16 autocast on the encoder's device type when ``precision`` is bf16, else nothing."""
        import contextlib

        if self.precision == "bf16":
            return self.torch.autocast(self.device.type, dtype=self.torch.bfloat16)
        return contextlib.nullcontext()

    def select(self, hidden_states) -> Any:
        """Mean of hidden_states[first..last] (float32)."""
        chosen = hidden_states[self.first : self.last + 1]
        if len(chosen) == 1:
            return chosen[0].float()
        return self.torch.stack([h.float() for h in chosen]).mean(dim=0)

    def settings(self) -> dict:
        out = {**super().settings(), "n_layers": self.n_layers, "device_type": self.device.type,
               "precision": self.precision}
        if self.modality == "video":
            out["face_crop"] = self.video is not None and isinstance(self.video.transform, FaceCrop)
        return out

    def setup_frames(self, *, face_crop: bool, fps: float | None) -> None:
        """The frames this encoder asks the decoder for (:func:`~blemore.encoders.facecrop.model_video_spec`):
        the centre square at the model's size, or, with ``face_crop``, a square around the face
        (folder name ``...-face``)."""
        self.video = model_video_spec(fps=fps, image_size=self.image_size, face_crop=face_crop)
        if face_crop:
            self.name = f"{self.name}-face"

    def close(self) -> None:
        self.model = None


def split_rows(outs: list, counts: Sequence[int], dim: int) -> list[np.ndarray]:
    """Tensors of consecutive rows (any float dtype, any device) -> one float32 array per clip."""
    import torch

    rows = torch.cat(outs).float().cpu().numpy() if outs else np.empty((0, dim), np.float32)
    return [np.ascontiguousarray(a, dtype=np.float32) for a in np.split(rows, np.cumsum(counts)[:-1])]
