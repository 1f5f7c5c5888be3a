"""Pretrained encoders by Hugging Face model id, through ``transformers`` and its local cache.

- audio (16 kHz waveform -> 50 frames/s): WavLM, HuBERT, wav2vec 2.0;
- video: CLIP ViT (one vector per frame: the CLS token), VideoMAE (one vector per
  non-overlapping window of ``num_frames`` (16) frames: the mean over its tokens).

Weights are read from the local cache only (``local_files_only=True``); a model that is
not cached raises :class:`BlemoreError` saying how to fetch it on a machine with
internet. ``model=`` injects an already built model (tests build the same
architectures from small random configs and go through this very code).

Layers: ``hidden_states[0]`` is the input embedding, ``hidden_states[i]`` the output of
block ``i``; a range ``a-b`` is the mean of ``hidden_states[a..b]``. Blocks after the
last one needed are not run (a truncated model gives the same states, tested).
On CUDA the forward pass runs under bf16 autocast; features are stored as float32.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Sequence

import numpy as np

from blemore.encoders.base import Encoder
from blemore.errors import BlemoreError
from blemore.media import VideoSpec

__all__ = [
    "HFAudioEncoder",
    "CLIPEncoder",
    "VideoMAEEncoder",
    "load_pretrained",
    "resolve_device",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


def load_pretrained(model_id: str, *, revision: str | None = None, cls: Any = None):
    """Load ``model_id`` from the local Hugging Face cache only (never downloads)."""
    if cls is None:
        from transformers import AutoModel as cls
    try:
        return cls.from_pretrained(model_id, revision=revision, local_files_only=True)
    except (OSError, ValueError, EnvironmentError) as exc:
        home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
        raise BlemoreError(
            f"model {model_id!r}{'@' + revision if revision else ''} is not in the local Hugging Face cache "
            f"({home}): on a machine with internet run `hf download {model_id}` (older: "
            f"`huggingface-cli download {model_id}`), then copy that cache here or set HF_HOME to it "
            f"[{type(exc).__name__}]"
        ) from None


def _layer_range(layers, n_layers: int, spec_name: str) -> tuple[int, int]:
    if layers is None or layers == "last":
        return n_layers, n_layers
    first, last = layers
    if last > n_layers:
        raise BlemoreError(
            f"encoder {spec_name!r}: layer {last} does not exist (the model has hidden states 0-{n_layers})"
        )
    return first, last


def _layer_name(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _truncate(model, keep: int) -> None:
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


class _TorchEncoder(Encoder):
    def _setup(self, model, *, base_name: str, model_id: str, revision: str | None, layers,
               device: str, batch_size: int, n_layers: int) -> None:
        import torch

        self.torch = torch
        self.device = resolve_device(device)
        self.first, self.last = _layer_range(layers, n_layers, base_name)
        self.layer = _layer_name(self.first, self.last)
        self.n_layers = n_layers
        self.model_id = model_id
        self.revision = getattr(model.config, "_commit_hash", None) or revision or ""
        self.batch_size = batch_size
        suffix = f"-l{self.layer}"
        self.name = f"{base_name}{suffix}"
        self.model = model.eval().to(self.device)
        self.dim = int(model.config.hidden_size)

    def _autocast(self):
        import contextlib

        if self.device.type == "cuda":
            return self.torch.autocast("cuda", dtype=self.torch.bfloat16)
        return contextlib.nullcontext()

    def _select(self, hidden_states) -> Any:
        """Mean of hidden_states[first..last] (float32)."""
        chosen = hidden_states[self.first : self.last + 1]
        if len(chosen) == 1:
            return chosen[0].float()
        return self.torch.stack([h.float() for h in chosen]).mean(dim=0)

    def settings(self) -> dict:
        out = {**super().settings(), "n_layers": self.n_layers, "device_type": self.device.type}
        if self.modality == "video":
            out["face_crop"] = bool(getattr(self, "cropper", None))
        return out

    # video encoders: optional face crop, then a square of the model's image size
    def _face_setup(self, face_crop: bool, fps: float) -> None:
        self.cropper = FaceCropper() if face_crop else None
        if face_crop:
            self.name = f"{self.name}-face"
        # a face crop needs more pixels than the model's input: decode at twice its size
        side = self.image_size * (2 if face_crop else 1)
        self.video = VideoSpec(fps=fps, short_side=side)

    def _crop(self, frames: np.ndarray) -> np.ndarray:
        return self.cropper(frames) if self.cropper is not None else frames

    def _square(self, frames: np.ndarray) -> np.ndarray:
        """Centre square of the shorter side, resized to the model's size (uint8, on the CPU)."""
        n, h, w, _ = frames.shape
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        frames = frames[:, top : top + side, left : left + side]
        if side == self.image_size:
            return np.ascontiguousarray(frames)
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        x = torch.nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                            antialias=True, align_corners=False)
        return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()

    def close(self) -> None:
        self.model = None


class HFAudioEncoder(_TorchEncoder):
    """WavLM / HuBERT / wav2vec 2.0: hidden states at 50 frames per second.

    Each waveform is normalised to zero mean and unit variance when the model's
    feature extractor asks for it (``do_normalize``), then the batch is zero-padded;
    models with layer-norm feature extractors get an attention mask, group-norm ones
    (wav2vec2-base) do not, as Hugging Face prescribes. Output frames beyond a
    clip's own length are cut.
    """

    modality = "audio"

    def __init__(self, *, base_name: str, model_id: str, revision: str | None = None, layers=None,
                 device: str = "cpu", batch_size: int | None = None, model=None,
                 normalize: bool | None = None):
        if model is None:
            model = load_pretrained(model_id, revision=revision)
            if normalize is None:
                normalize = _feature_extractor_normalizes(model_id, revision)
        config = model.config
        n_layers = int(config.num_hidden_layers)
        self._setup(model, base_name=base_name, model_id=model_id, revision=revision, layers=layers,
                    device=device, batch_size=batch_size or (32 if device.startswith("cuda") else 4),
                    n_layers=n_layers)
        if self.last < n_layers:
            _truncate(self.model, self.last + 1)
        self.normalize = True if normalize is None else bool(normalize)
        self.use_mask = getattr(config, "feat_extract_norm", "layer") == "layer"
        self.stride = int(np.prod(getattr(config, "conv_stride", (320,))))

    def output_fps(self, input_rate: float) -> float:
        return float(input_rate) / self.stride

    def encode(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        torch = self.torch
        waves = []
        for x in inputs:
            x = np.asarray(x, dtype=np.float32)
            if x.size < 400:
                raise BlemoreError(f"audio too short for {self.name} ({x.size} samples, need >= 400)")
            if self.normalize:
                x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
            waves.append(x)
        lengths = [len(x) for x in waves]
        batch = np.zeros((len(waves), max(lengths)), dtype=np.float32)
        mask = np.zeros(batch.shape, dtype=np.int64)
        for i, x in enumerate(waves):
            batch[i, : len(x)] = x
            mask[i, : len(x)] = 1
        if self.use_mask or len(set(lengths)) == 1:
            groups = [list(range(len(waves)))]
        else:  # group-norm feature extractors see padding: run clips of equal length together
            by_length: dict[int, list[int]] = {}
            for i, n in enumerate(lengths):
                by_length.setdefault(n, []).append(i)
            groups = list(by_length.values())
        frames = self.model._get_feat_extract_output_lengths(torch.tensor(lengths))
        result: list[np.ndarray] = [np.empty(0)] * len(waves)
        for group in groups:
            values = torch.from_numpy(batch[group, : max(lengths[i] for i in group)]).to(self.device)
            kwargs = {}
            if self.use_mask and len(group) > 1:
                kwargs["attention_mask"] = torch.from_numpy(mask[group, : values.shape[1]]).to(self.device)
            with torch.inference_mode(), self._autocast(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*mismatched key_padding_mask.*")
                out = self.model(values, output_hidden_states=True, **kwargs)
                states = self._select(out.hidden_states).cpu().numpy()
            for row, i in enumerate(group):
                result[i] = np.ascontiguousarray(states[row, : int(frames[i])], dtype=np.float32)
        return result

    def settings(self) -> dict:
        return {**super().settings(), "normalize": self.normalize, "attention_mask": self.use_mask}


def _feature_extractor_normalizes(model_id: str, revision: str | None) -> bool | None:
    try:
        from transformers import AutoFeatureExtractor

        fe = AutoFeatureExtractor.from_pretrained(model_id, revision=revision, local_files_only=True)
        return bool(getattr(fe, "do_normalize", True))
    except Exception:  # no preprocessor config cached: fall back to normalising
        return None


def _to_pixels(frames: np.ndarray, size: int, mean, std, torch, device):
    """uint8 (N, H, W, 3) -> float (N, 3, size, size): centre crop of the shorter side, resize, normalise."""
    n, h, w, _ = frames.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = torch.from_numpy(np.ascontiguousarray(frames[:, top : top + side, left : left + side])).to(device)
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    if side != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                            align_corners=False)
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return (x - m) / s


class FaceCropper:
    """A fixed square crop around the face, found by MediaPipe's face detector.

    The detector runs on up to ``probes`` frames spread over the clip; the crop is the
    median face box, enlarged by ``margin`` and made square, kept for the whole clip
    (no jitter between frames). Without a face anywhere the clip is centre-cropped.
    """

    def __init__(self, *, margin: float = 1.6, probes: int = 8, min_confidence: float = 0.5):
        os.environ.setdefault("GLOG_minloglevel", "2")
        import mediapipe as mp

        self._mp = mp
        self.margin = margin
        self.probes = probes
        self.min_confidence = min_confidence

    def box(self, frames: np.ndarray) -> tuple[int, int, int] | None:
        """(top, left, side) of the crop in pixels, or None without a face."""
        from blemore.encoders.facemesh import _quiet_native_stderr

        t, h, w = frames.shape[:3]
        picks = np.unique(np.linspace(0, t - 1, min(self.probes, t)).round().astype(int))
        boxes = []
        with _quiet_native_stderr(), self._mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=self.min_confidence
        ) as detector:
            for i in picks:
                result = detector.process(np.ascontiguousarray(frames[i]))
                if result.detections:
                    b = result.detections[0].location_data.relative_bounding_box
                    boxes.append((b.xmin * w, b.ymin * h, b.width * w, b.height * h))
        if not boxes:
            return None
        x, y, bw, bh = np.median(np.array(boxes), axis=0)
        side = int(min(min(h, w), max(8.0, self.margin * max(bw, bh))))
        cx, cy = x + bw / 2, y + bh / 2
        left = int(np.clip(round(cx - side / 2), 0, w - side))
        top = int(np.clip(round(cy - side / 2), 0, h - side))
        return top, left, side

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        box = self.box(frames)
        if box is None:
            return frames
        top, left, side = box
        return frames[:, top : top + side, left : left + side]


class CLIPEncoder(_TorchEncoder):
    """CLIP ViT image tower, one vector per frame (CLS token).

    ``last`` (default) is the pooled output (CLS after the final layer norm); a layer or
    range selects the CLS token of those hidden states. Frames: ``fps`` (30) with the
    shorter side scaled to the model's image size, centre-cropped.
    """

    modality = "video"

    def __init__(self, *, base_name: str, model_id: str, revision: str | None = None, layers=None,
                 device: str = "cpu", batch_size: int | None = None, model=None, fps: float = 30.0,
                 face_crop: bool = False):
        if model is None:
            from transformers import CLIPVisionModel

            model = load_pretrained(model_id, revision=revision, cls=CLIPVisionModel)
        config = model.config
        self.pooled = layers is None or layers == "last"
        self._setup(model, base_name=base_name, model_id=model_id, revision=revision, layers=layers,
                    device=device, batch_size=batch_size or (4 if device.startswith("cuda") else 1),
                    n_layers=int(config.num_hidden_layers))
        if self.pooled:
            self.layer = "last"
            self.name = f"{base_name}"
        elif self.last < self.n_layers:
            _truncate(self.model, self.last + 1)
        self.image_size = int(config.image_size)
        self._face_setup(face_crop, fps)
        self.frames_per_pass = 256 if self.device.type == "cuda" else 32

    def output_fps(self, input_rate: float) -> float:
        return float(input_rate)

    def encode(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        torch = self.torch
        inputs = [self._crop(np.asarray(f)) for f in inputs]
        counts = [len(f) for f in inputs]
        frames = np.concatenate([self._square(f) for f in inputs])
        outs = []
        for start in range(0, len(frames), self.frames_per_pass):
            pixels = _to_pixels(frames[start : start + self.frames_per_pass], self.image_size,
                                CLIP_MEAN, CLIP_STD, torch, self.device)
            with torch.inference_mode(), self._autocast():
                out = self.model(pixel_values=pixels, output_hidden_states=not self.pooled)
                if self.pooled:
                    vec = out.pooler_output.float()
                else:
                    vec = self._select([h[:, 0] for h in out.hidden_states])
            outs.append(vec.cpu().numpy())
        allv = np.concatenate(outs).astype(np.float32)
        return [np.ascontiguousarray(a) for a in np.split(allv, np.cumsum(counts)[:-1])]


class VideoMAEEncoder(_TorchEncoder):
    """VideoMAE, one vector per non-overlapping window of ``num_frames`` (16) frames.

    A window's vector is the mean over its tokens of the chosen hidden state(s). A clip
    shorter than one window is padded by repeating its last frame; frames after the last
    whole window are dropped (a 5 s clip at 30 fps gives 9 windows).
    """

    modality = "video"

    def __init__(self, *, base_name: str, model_id: str, revision: str | None = None, layers=None,
                 device: str = "cpu", batch_size: int | None = None, model=None, fps: float = 30.0,
                 face_crop: bool = False):
        if model is None:
            from transformers import VideoMAEModel

            model = load_pretrained(model_id, revision=revision, cls=VideoMAEModel)
        config = model.config
        self._setup(model, base_name=base_name, model_id=model_id, revision=revision, layers=layers,
                    device=device, batch_size=batch_size or (8 if device.startswith("cuda") else 1),
                    n_layers=int(config.num_hidden_layers))
        if self.last < self.n_layers:
            _truncate(self.model, self.last + 1)
        self.window = int(config.num_frames)
        self.image_size = int(config.image_size)
        self._face_setup(face_crop, fps)
        self.windows_per_pass = 32 if self.device.type == "cuda" else 4

    def output_fps(self, input_rate: float) -> float:
        return float(input_rate) / self.window

    def _windows(self, frames: np.ndarray) -> np.ndarray:
        t = len(frames)
        if t < self.window:
            frames = np.concatenate([frames, np.repeat(frames[-1:], self.window - t, axis=0)])
            t = self.window
        n = t // self.window
        return frames[: n * self.window].reshape(n, self.window, *frames.shape[1:])

    def encode(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        torch = self.torch
        windows = [self._windows(self._square(self._crop(np.asarray(f)))) for f in inputs]
        counts = [len(w) for w in windows]
        allw = np.concatenate(windows)
        outs = []
        for start in range(0, len(allw), self.windows_per_pass):
            chunk = allw[start : start + self.windows_per_pass]
            b = len(chunk)
            pixels = _to_pixels(chunk.reshape(-1, *chunk.shape[2:]), self.image_size,
                                IMAGENET_MEAN, IMAGENET_STD, torch, self.device)
            pixels = pixels.view(b, self.window, 3, self.image_size, self.image_size)
            with torch.inference_mode(), self._autocast():
                out = self.model(pixel_values=pixels, output_hidden_states=True)
                vec = self._select(out.hidden_states).mean(dim=1)
            outs.append(vec.cpu().numpy())
        allv = np.concatenate(outs).astype(np.float32)
        return [np.ascontiguousarray(a) for a in np.split(allv, np.cumsum(counts)[:-1])]
