"""Pretrained encoders through ``transformers``: by Hugging Face model id or from a local folder.

- audio (16 kHz waveform -> 50 frames/s): WavLM, HuBERT, wav2vec 2.0;
- video: CLIP ViT (one vector per frame: the CLS token, or its projected image embedding),
  VideoMAE (one vector per non-overlapping window of ``num_frames`` (16) frames: the mean
  over its tokens).

Weights are read from the local Hugging Face cache only (``local_files_only=True``), or from
a local folder written by ``save_pretrained`` (``hubert-large=/models/hubert-large-ll60k``);
a model that is not there raises :class:`BlemoreError` saying how to fetch it on a machine
with internet. ``model=`` injects an already built model (tests build the same
architectures from small random configs and go through this very code).

The paper's settings: HuBERT Large's *last hidden state* (s3prl's ``hubert_large_ll60k``
``last_hidden_state``: the output of the final layer norm, ``hidden_states[24]`` here) is
``hubert-large``'s default layer; the paper's CLIP is ``clip-b32``, the projected image
embedding of ViT-B/32 (``get_image_features``, 512 values) of every frame.

Layers (:class:`~blemore.encoders.model.ModelEncoder`): ``hidden_states[0]`` is the input
embedding, ``hidden_states[i]`` the output of block ``i``; a range ``a-b`` is the mean of
``hidden_states[a..b]``. Blocks after the last one needed are not run (a truncated model
gives the same states, tested).

Precision (``precision=``): ``"auto"`` runs the forward pass under bf16 autocast on CUDA
and in float32 on the CPU; ``"fp32"`` never autocasts; ``"bf16"`` autocasts to bfloat16 on
any device (the CPU included, which is how the reduced-precision path is tested).
Features are always stored as float32; ``settings()["precision"]`` records the effective
one (``"bf16"`` or ``"fp32"``).

Video frames go to the device once per clip as uint8; the centre square is cropped,
resized (bilinear, antialiased) and normalised there in float32, without rounding.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Sequence

import numpy as np

from blemore.encoders.base import PRECISIONS, BuildRequest, Precision, check_precision
from blemore.encoders.model import ModelEncoder, resolve_device, split_rows, truncate_blocks
from blemore.errors import BlemoreError
from blemore.media.decoder import centre_square

__all__ = [
    "HFAudioEncoder",
    "CLIPEncoder",
    "VideoMAEEncoder",
    "PRECISIONS",
    "Precision",
    "build_audio",
    "build_clip",
    "build_clip_projected",
    "build_videomae",
    "check_precision",
    "load_pretrained",
    "resolve_device",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_pretrained(model_id: str, *, revision: str | None = None, cls: Any = None, local: bool = False):
    """Load ``model_id`` from the local Hugging Face cache only (never downloads); with
    ``local``, ``model_id`` is a folder written by ``save_pretrained``."""
    if cls is None:
        from transformers import AutoModel as cls
    if local:
        return _load_local(model_id, cls)
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


def _load_local(path: str, cls: Any):
    if not os.path.isdir(path):
        raise BlemoreError(
            f"{path}: a local model for this encoder is a folder written by save_pretrained "
            "(config.json and the weights), not a single file"
        )
    try:
        return cls.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, EnvironmentError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise BlemoreError(f"{path}: not a Hugging Face model folder of this family ({reason})") from None


class _VisionEncoder(ModelEncoder):
    """A video model: the frames it asks for, and its pixels prepared on the device."""

    image_size: int
    pixel_mean: Sequence[float]
    pixel_std: Sequence[float]

    def output_fps(self, input_rate: float) -> float:
        return float(input_rate)

    def _pixels(self, clips: Sequence[np.ndarray]):
        """Clips of uint8 frames (T_i, H_i, W_i, 3) -> float32 (sum T_i, 3, S, S) on the device.

        Each clip goes to the device once, as uint8 (clips may differ in frame size); its
        centre square is resized and normalised there (:func:`_to_pixels`), straight into
        the batch tensor.
        """
        torch = self.torch
        size = self.image_size
        out = torch.empty((sum(len(c) for c in clips), 3, size, size), device=self.device)
        start = 0
        for frames in clips:
            x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
            _to_pixels(x, size, self.pixel_mean, self.pixel_std, out=out[start : start + len(frames)])
            start += len(frames)
        return out


class HFAudioEncoder(ModelEncoder):
    """WavLM / HuBERT / wav2vec 2.0: hidden states at 50 frames per second.

    Without ``layers`` (or with ``"last"``) the features are the model's *last hidden
    state*: the output after the final layer norm (``last_hidden_state``; name without a
    layer suffix). A layer ``N`` is ``hidden_states[N]``, the output of block ``N`` (with
    transformers 5, for ``N`` = the last block that is the state *before* the final layer
    norm of the layer-norm-first models, WavLM / HuBERT / wav2vec 2.0 Large).

    The batch is zero-padded and goes to the device; there each waveform is normalised
    to zero mean and unit variance when the model's feature extractor asks for it
    (``do_normalize``), padding left at zero;
    models with layer-norm feature extractors get an attention mask, group-norm ones
    (wav2vec2-base) do not, as Hugging Face prescribes. Output frames beyond a
    clip's own length are cut.
    """

    modality = "audio"

    def __init__(self, *, base_name: str, model_id: str, revision: str | None = None, layers=None,
                 device: str = "cpu", batch_size: int | None = None, model=None,
                 normalize: bool | None = None, precision: Precision = "auto", local: bool = False):
        check_precision(precision)
        if model is None:
            model = load_pretrained(model_id, revision=revision, local=local)
            if normalize is None:
                normalize = _feature_extractor_normalizes(model_id, revision)
        config = model.config
        n_layers = int(config.num_hidden_layers)
        self.setup_model(model, base_name=base_name, model_id=model_id, revision=revision, layers=layers,
                    device=device, batch_size=batch_size or (32 if device.startswith("cuda") else 4),
                    n_layers=n_layers, precision=precision)
        self.last_state = layers is None or layers == "last"
        if self.last_state:
            self.layer, self.name = "last", base_name
        elif self.last < n_layers:
            truncate_blocks(self.model, self.last + 1)
        self.normalize = True if normalize is None else bool(normalize)
        self.use_mask = getattr(config, "feat_extract_norm", "layer") == "layer"
        self.stride = int(np.prod(getattr(config, "conv_stride", (320,))))

    def output_fps(self, input_rate: float) -> float:
        return float(input_rate) / self.stride

    def encode(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        torch = self.torch
        waves = [np.asarray(x, dtype=np.float32) for x in inputs]
        for x in waves:
            if x.size < 400:
                raise BlemoreError(f"audio too short for {self.name} ({x.size} samples, need >= 400)")
        lengths = [len(x) for x in waves]
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
            width = max(lengths[i] for i in group)
            batch = np.zeros((len(group), width), dtype=np.float32)
            for row, i in enumerate(group):
                batch[row, : lengths[i]] = waves[i]
            values = torch.from_numpy(batch).to(self.device)
            sizes = torch.tensor([lengths[i] for i in group], device=self.device)
            mask = torch.arange(width, device=self.device)[None, :] < sizes[:, None]
            if self.normalize:
                values = _zero_mean_unit_variance(values, mask, sizes)
            kwargs = {}
            if self.use_mask and len(group) > 1:
                kwargs["attention_mask"] = mask.long()
            with torch.inference_mode(), self.autocast(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*mismatched key_padding_mask.*")
                out = self.model(values, output_hidden_states=not self.last_state, **kwargs)
                chosen = out.last_hidden_state if self.last_state else self.select(out.hidden_states)
                states = chosen.float().cpu().numpy()
            for row, i in enumerate(group):
                result[i] = np.ascontiguousarray(states[row, : int(frames[i])], dtype=np.float32)
        return result

    def settings(self) -> dict:
        return {**super().settings(), "normalize": self.normalize, "attention_mask": self.use_mask}


def _zero_mean_unit_variance(values, mask, sizes):
    """Each row's first ``sizes[i]`` samples to zero mean and unit variance, padding kept at 0.

    Hugging Face's ``Wav2Vec2FeatureExtractor`` normalisation ((x - mean) / sqrt(var + 1e-7)
    per waveform, then zero padding), done on the encoder's device for the whole batch;
    the mean and variance are summed in float64.
    """
    wide = values.double()
    n = sizes.double()
    mean = wide.sum(dim=1) / n
    centred = (wide - mean[:, None]) * mask
    var = centred.square().sum(dim=1) / n
    return (centred / (var + 1e-7).sqrt()[:, None]).float()


def _feature_extractor_normalizes(model_id: str, revision: str | None) -> bool | None:
    try:
        from transformers import AutoFeatureExtractor

        fe = AutoFeatureExtractor.from_pretrained(model_id, revision=revision, local_files_only=True)
        return bool(getattr(fe, "do_normalize", True))
    except Exception:  # no preprocessor config cached: fall back to normalising
        return None


def _to_pixels(frames, size: int, mean: Sequence[float], std: Sequence[float], *, out=None,
               chunk: int = 64):
    """uint8 tensor (N, H, W, 3) -> float32 (N, 3, size, size) on the same device.

    The centre square of the shorter side, scaled to [0, 1], resized (bilinear,
    antialiased) and normalised with ``mean`` / ``std``, all in float32 (no rounding).
    ``chunk`` frames at a time bound the float copy of full-size frames; ``out``, if
    given, receives the result.
    """
    import torch

    n = frames.shape[0]
    square = centre_square(frames).permute(0, 3, 1, 2)
    side = square.shape[-1]
    if out is None:
        out = torch.empty((n, 3, size, size), device=frames.device)
    m = torch.tensor(mean, device=frames.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=frames.device).view(1, 3, 1, 1)
    for start in range(0, n, chunk):
        x = square[start : start + chunk].float().div_(255.0)
        if side != size:
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                                align_corners=False)
        out[start : start + chunk] = (x - m) / s
    return out


class CLIPEncoder(_VisionEncoder):
    """CLIP ViT image tower, one vector per frame (CLS token).

    ``last`` (default) is the pooled output (CLS after the final layer norm), or with
    ``projection`` the image embedding (the pooled output through the visual projection:
    CLIP's ``get_image_features``, ``projection_dim`` values); a layer or range selects the
    CLS token of those hidden states. Frames: ``fps`` (30; None: every frame) with the
    shorter side scaled to the model's image size, centre-cropped.
    """

    modality = "video"
    pixel_mean, pixel_std = CLIP_MEAN, CLIP_STD

    def __init__(self, *, base_name: str, model_id: str, revision: str | None = None, layers=None,
                 device: str = "cpu", batch_size: int | None = None, model=None, fps: float | None = 30.0,
                 face_crop: bool = False, precision: Precision = "auto", local: bool = False,
                 projection: bool = False):
        check_precision(precision)
        if model is None:
            from transformers import CLIPVisionModel, CLIPVisionModelWithProjection

            cls = CLIPVisionModelWithProjection if projection else CLIPVisionModel
            model = load_pretrained(model_id, revision=revision, cls=cls, local=local)
        config = model.config
        self.pooled = layers is None or layers == "last"
        self.projection = projection and self.pooled
        self.setup_model(model, base_name=base_name, model_id=model_id, revision=revision, layers=layers,
                    device=device, batch_size=batch_size or (4 if device.startswith("cuda") else 1),
                    n_layers=int(config.num_hidden_layers), precision=precision)
        if self.pooled:
            self.layer = "projected" if self.projection else "last"
            self.name = f"{base_name}"
            if self.projection:
                self.dim = int(config.projection_dim)
        elif self.last < self.n_layers:
            truncate_blocks(self.model, self.last + 1)
        self.image_size = int(config.image_size)
        self.setup_frames(face_crop=face_crop, fps=fps)
        self.frames_per_pass = 256 if self.device.type == "cuda" else 32

    def encode(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        torch = self.torch
        clips = [np.asarray(f) for f in inputs]
        counts = [len(f) for f in clips]
        pixels = self._pixels(clips)
        outs = []
        for start in range(0, len(pixels), self.frames_per_pass):
            with torch.inference_mode(), self.autocast():
                out = self.model(pixel_values=pixels[start : start + self.frames_per_pass],
                                 output_hidden_states=not self.pooled)
                if self.projection:
                    vec = out.image_embeds
                elif self.pooled:
                    vec = out.pooler_output
                else:
                    vec = self.select([h[:, 0] for h in out.hidden_states])
            outs.append(vec)
        return split_rows(outs, counts, self.dim)


class VideoMAEEncoder(_VisionEncoder):
    """VideoMAE, one vector per non-overlapping window of ``num_frames`` (16) frames.

    A window's vector is the mean over its tokens of the chosen hidden state(s). A clip
    shorter than one window is padded by repeating its last frame; frames after the last
    whole window are dropped (a 5 s clip at 30 fps gives 9 windows).
    """

    modality = "video"
    pixel_mean, pixel_std = IMAGENET_MEAN, IMAGENET_STD

    def __init__(self, *, base_name: str, model_id: str, revision: str | None = None, layers=None,
                 device: str = "cpu", batch_size: int | None = None, model=None, fps: float | None = 30.0,
                 face_crop: bool = False, precision: Precision = "auto", local: bool = False):
        check_precision(precision)
        if model is None:
            from transformers import VideoMAEModel

            model = load_pretrained(model_id, revision=revision, cls=VideoMAEModel, local=local)
        config = model.config
        self.setup_model(model, base_name=base_name, model_id=model_id, revision=revision, layers=layers,
                    device=device, batch_size=batch_size or (8 if device.startswith("cuda") else 1),
                    n_layers=int(config.num_hidden_layers), precision=precision)
        if self.last < self.n_layers:
            truncate_blocks(self.model, self.last + 1)
        self.window = int(config.num_frames)
        self.image_size = int(config.image_size)
        self.setup_frames(face_crop=face_crop, fps=fps)
        self.windows_per_pass = 32 if self.device.type == "cuda" else 4

    def output_fps(self, input_rate: float) -> float:
        return float(input_rate) / self.window

    def _windows(self, frames: np.ndarray) -> np.ndarray:
        """The frames of the clip's whole windows, (n * window, H, W, 3).

        A clip shorter than one window is padded by repeating its last frame; frames after
        the last whole window are dropped.
        """
        t = len(frames)
        if t < self.window:
            frames = np.concatenate([frames, np.repeat(frames[-1:], self.window - t, axis=0)])
            t = self.window
        return frames[: t // self.window * self.window]

    def encode(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        torch = self.torch
        clips = [self._windows(np.asarray(f)) for f in inputs]
        counts = [len(c) // self.window for c in clips]
        size = self.image_size
        windows = self._pixels(clips).view(-1, self.window, 3, size, size)
        outs = []
        for start in range(0, len(windows), self.windows_per_pass):
            with torch.inference_mode(), self.autocast():
                out = self.model(pixel_values=windows[start : start + self.windows_per_pass],
                                 output_hidden_states=True)
                vec = self.select(out.hidden_states).mean(dim=1)
            outs.append(vec)
        return split_rows(outs, counts, self.dim)


def _options(request: BuildRequest) -> dict[str, Any]:
    """The constructor arguments every model encoder takes, from a registry request."""
    return dict(base_name=request.name, model_id=request.weights, revision=request.revision,
                layers=request.layers, device=request.device, batch_size=request.batch_size,
                model=request.model, precision=request.precision, local=request.local)


def build_audio(request: BuildRequest) -> HFAudioEncoder:
    """The registry's factory for WavLM, HuBERT and wav2vec 2.0 (default layer: the last hidden state)."""
    return HFAudioEncoder(**_options(request))


def build_clip(request: BuildRequest) -> CLIPEncoder:
    """The registry's factory for CLIP's pooled output per frame, at 30 fps."""
    return CLIPEncoder(**_options(request), face_crop=request.face_crop)


def build_clip_projected(request: BuildRequest) -> CLIPEncoder:
    """The registry's factory for the paper's CLIP: the projected image embedding of every frame."""
    return CLIPEncoder(**_options(request), face_crop=request.face_crop, fps=None, projection=True)


def build_videomae(request: BuildRequest) -> VideoMAEEncoder:
    """The registry's factory for VideoMAE, one vector per 16-frame window."""
    return VideoMAEEncoder(**_options(request), face_crop=request.face_crop)
