"""Encoders whose weights come from one local checkpoint file (not from the Hugging Face cache).

VideoMAEv2, Video Swin and ImageBind publish their weights as PyTorch ``.pth`` files in
their own key layouts. This module holds what those encoders share:

- :func:`find_checkpoint`: the spec's ``=PATH`` (or the default file name, looked up in the
  current folder and in ``$BLEMORE_WEIGHTS``) -> an existing file, else a one-line
  :class:`~blemore.errors.BlemoreError` naming the file expected and where to get it;
- :func:`read_checkpoint`: the file -> a flat ``{key: tensor}`` state dict (unwrapping
  ``model`` / ``module`` / ``state_dict`` and a ``module.`` prefix, as the official loaders do),
  read with ``weights_only=True``;
- :func:`load_strict`: a state dict, already mapped to a model's own names, into the model with
  no key missing, none unexpected and every shape equal -- else a one-line error listing them;
- :class:`CheckpointEncoder`: device, precision (``auto`` | ``fp32`` | ``bf16``, as for the
  Hugging Face encoders), settings and batching for the three families.

>>> find_checkpoint(None, default="imagebind_huge.pth", encoder="imagebind-vision",
...                 source="https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth")  # doctest: +SKIP
PosixPath('/weights/imagebind_huge.pth')
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blemore.encoders.base import Encoder
from blemore.encoders.hf import check_precision, resolve_device
from blemore.errors import BlemoreError

__all__ = [
    "WEIGHTS_ENV",
    "CheckpointEncoder",
    "effective_precision",
    "find_checkpoint",
    "load_strict",
    "read_checkpoint",
    "store_name",
]

#: A folder searched for checkpoint files given by name only (``videomaev2`` or ``videomaev2=FILE.pth``).
WEIGHTS_ENV = "BLEMORE_WEIGHTS"


def find_checkpoint(given: str | None, *, default: str, encoder: str, source: str) -> Path:
    """The checkpoint file a spec names.

    ``given`` is the spec's ``=PATH`` (None: ``default``). A path with a folder must exist as
    given; a bare file name is looked up in the current folder, then in ``$BLEMORE_WEIGHTS``.
    Raises :class:`BlemoreError` naming the file expected and ``source`` (where to get it).
    """
    name = given or default
    path = Path(name).expanduser()
    candidates = [path]
    if len(path.parts) == 1 and os.environ.get(WEIGHTS_ENV):
        candidates.append(Path(os.environ[WEIGHTS_ENV]).expanduser() / path)
    for c in candidates:
        if c.is_file():
            return c
    where = " or ".join(str(c) for c in candidates)
    if len(path.parts) == 1 and not os.environ.get(WEIGHTS_ENV):
        where += f" (${WEIGHTS_ENV} is not set)"
    raise BlemoreError(
        f"{encoder}: checkpoint {path.name!r} not found ({where}): download it from {source}, then pass "
        f"{encoder}=/path/to/{path.name} or put it in the folder ${WEIGHTS_ENV} names"
    )


_WRAPPERS = ("model", "module", "state_dict")


def _safe_globals() -> list:
    """Types that training scripts leave beside the weights (argparse options, numpy scalars)."""
    import argparse

    out: list = [argparse.Namespace]
    try:
        import numpy as np

        out += [np.dtype, np.ndarray, type(np.dtype("float64")), type(np.dtype("int64"))]
        for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
            try:
                module = __import__(mod, fromlist=["scalar", "_reconstruct"])
                out += [module.scalar, module._reconstruct]
                break
            except (ImportError, AttributeError):
                continue
    except ImportError:  # pragma: no cover
        pass
    return out


def _load(path: Path, encoder: str) -> Any:
    import pickle

    import torch

    try:
        with torch.serialization.safe_globals(_safe_globals()):
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found is None:
            raise BlemoreError(f"{encoder}: {path} is not a readable PyTorch checkpoint (not a torch.save file)") from None
        raise BlemoreError(
            f"{encoder}: {path} holds Python objects beside the weights ({found.group(1)}) that cannot be loaded "
            f"safely; if you trust the file, save its weights alone: "
            f"torch.save(torch.load(p, weights_only=False)['model'], 'weights.pth')"
        ) from None
    except Exception as exc:  # noqa: BLE001 -- a truncated download, not a torch file, ...
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise BlemoreError(f"{encoder}: {path} is not a readable PyTorch checkpoint ({reason})") from None


def read_checkpoint(path: str | Path, *, encoder: str) -> dict[str, Any]:
    """The tensors of a checkpoint file, ``{key: tensor}``.

    The official loaders unwrap ``ckpt["model"]`` / ``ckpt["module"]`` (VideoMAEv2) or
    ``ckpt["state_dict"]`` (mmaction's Video Swin), and strip the ``module.`` prefix that
    ``DataParallel`` leaves; so does this. Non-tensor entries (an epoch counter) are dropped.
    """
    import torch

    path = Path(path)
    obj = _load(path, encoder)
    if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        obj = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), Mapping)), obj)
    if not isinstance(obj, Mapping):
        raise BlemoreError(f"{encoder}: {path} holds a {type(obj).__name__}, expected a state dict of tensors")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise BlemoreError(f"{encoder}: {path} holds no tensors (expected a state dict)")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _listing(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_strict(model, state: Mapping[str, Any], *, path: str | Path, encoder: str, layout: str) -> None:
    """Copy ``state`` (keys already in ``model``'s names) into ``model``, every key and shape equal.

    A model built on the ``meta`` device gets the checkpoint's tensors assigned (no copy, no
    random initialisation spent); floating-point tensors become float32. Raises :class:`BlemoreError` in one line naming the keys
    missing, unexpected or of another shape, and ``layout`` (what was expected).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_listing(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_listing(unexpected)})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape ({_listing(shapes, 2)})")
        raise BlemoreError(f"{encoder}: {path} does not match the {layout} layout: {'; '.join(parts)}")
    on_meta = any(t.is_meta for t in own.values())
    # float32 parameters whatever the file holds (a half-precision release would otherwise stay half)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=on_meta)


def effective_precision(precision: str, device_type: str) -> str:
    """``"auto"`` -> ``"bf16"`` on CUDA and ``"fp32"`` elsewhere (as the Hugging Face encoders)."""
    if check_precision(precision) == "auto":
        return "bf16" if device_type == "cuda" else "fp32"
    return precision


def store_name(family: str, checkpoint: str | None, default: str) -> str:
    """The store folder of a checkpoint encoder: ``family`` for the default checkpoint file,
    ``family-<file stem>`` for another (the folder never holds the path).

    >>> store_name("video-swin", "/w/swin_base_patch244_window877_kinetics400_22k.pth",
    ...            "swin_base_patch244_window877_kinetics400_22k.pth")
    'video-swin'
    >>> store_name("video-swin", "/w/swin3d_b_22k-7c6ae6fa.pth", "x.pth")
    'video-swin-swin3d_b_22k-7c6ae6fa'
    """
    if checkpoint is None or Path(checkpoint).name == default:
        return family
    stem = re.sub(r"[^a-z0-9._-]+", "-", Path(checkpoint).stem.lower()).strip("-")
    return f"{family}-{stem}"


class CheckpointEncoder(Encoder):
    """What the checkpoint encoders share: device, precision, batching, settings.

    Subclasses call :meth:`_setup` with their built model (``torch.nn.Module``), then set
    ``name``, ``dim`` and (video) ``video``. ``precision``: ``"auto"`` runs under bf16
    autocast on CUDA and in float32 on the CPU; ``"bf16"`` autocasts on any device (the
    CPU too); features are stored as float32.
    """

    checkpoint: str = ""
    architecture: str = ""

    def _setup(self, model, *, device: str, precision: str, batch_size: int | None, cuda_batch: int,
               cpu_batch: int) -> None:
        import torch

        self.torch = torch
        self.device = resolve_device(device)
        self.precision = effective_precision(precision, self.device.type)
        self.batch_size = batch_size or (cuda_batch if self.device.type == "cuda" else cpu_batch)
        self.model = model.eval().to(self.device)

    def _autocast(self):
        if self.precision == "bf16":
            return self.torch.autocast(self.device.type, dtype=self.torch.bfloat16)
        return contextlib.nullcontext()

    def _video_spec(self, face_crop: bool, *, short_side: int | None = None, crop: str | None = None,
                    fps: float | None = None):
        """The frames to ask the decoder for: ``short_side`` / ``crop`` (None: whole frames as
        decoded), or with ``face_crop`` a square around the face at twice the model's input size
        (the name gets ``-face``)."""
        from blemore.media.decoder import VideoSpec

        if face_crop:
            from blemore.encoders.facecrop import model_video_spec

            self.name = f"{self.name}-face"
            return model_video_spec(fps=fps, image_size=self.image_size, face_crop=True)
        return VideoSpec(fps=fps, short_side=short_side, crop=crop)

    def encode_windows(self, inputs, pixels_of, windows_of, run) -> list:
        """Encode clips window by window: the one loop of the windowed video models.

        ``pixels_of(clips)`` stacks every clip's preprocessed frames plus one padding frame
        at the end; ``windows_of(n_frames)`` gives a clip's windows as frame indices (``-1``:
        the padding frame); ``run(windows)`` encodes a batch of windows ``(w, frames, ...)``.
        Returns one ``(windows, dim)`` float32 array per clip.
        """
        import numpy as np

        clips = [np.asarray(f) for f in inputs]
        for frames in clips:
            if len(frames) == 0:
                raise BlemoreError(f"{self.name}: a clip without frames cannot be encoded")
        pixels = pixels_of(clips)
        pad = len(pixels) - 1
        rows, counts, offset = [], [], 0
        for frames in clips:
            idx = windows_of(len(frames))
            rows.append(np.where(idx < 0, pad, idx + offset))
            counts.append(len(idx))
            offset += len(frames)
        index = self.torch.from_numpy(np.concatenate(rows)).to(self.device)
        outs = []
        for start in range(0, len(index), self.windows_per_pass):
            with self.torch.inference_mode(), self._autocast():
                outs.append(run(pixels[index[start : start + self.windows_per_pass]]).float())
        result = self.torch.cat(outs).cpu().numpy() if outs else np.empty((0, self.dim), np.float32)
        return [np.ascontiguousarray(a, dtype=np.float32) for a in np.split(result, np.cumsum(counts)[:-1])]

    def settings(self) -> dict[str, Any]:
        out = {**super().settings(), "checkpoint": self.checkpoint, "architecture": self.architecture,
               "device_type": self.device.type, "precision": self.precision}
        if self.modality == "video":
            out["face_crop"] = self.video is not None and self.video.transform is not None
        return out

    def close(self) -> None:
        self.model = None
