"""Small random-initialised models of the encoder families, for tests that never download weights."""

from __future__ import annotations

import numpy as np
import torch

TINY_AUDIO = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=37,
                  conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                  num_conv_pos_embedding_groups=2)


def tiny_audio_model(kind: str, seed: int = 0, **config):
    """A small random audio model; ``config`` overrides (e.g. ``initializer_range``)."""
    import transformers as tf

    torch.manual_seed(seed)
    layer_norm = dict(feat_extract_norm="layer", do_stable_layer_norm=True)
    if kind == "wavlm-large":
        return tf.WavLMModel(tf.WavLMConfig(**TINY_AUDIO, **layer_norm, **config))
    if kind == "hubert-large":
        return tf.HubertModel(tf.HubertConfig(**TINY_AUDIO, **layer_norm, **config))
    return tf.Wav2Vec2Model(tf.Wav2Vec2Config(**TINY_AUDIO, **config))  # group-norm extractor, like wav2vec2-base


TINY_VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, image_size=32,
                   patch_size=16)


def tiny_clip(seed: int = 0, **config):
    import transformers as tf

    torch.manual_seed(seed)
    return tf.CLIPVisionModel(tf.CLIPVisionConfig(**TINY_VISION, **config))


def tiny_videomae(seed: int = 0, **config):
    import transformers as tf

    torch.manual_seed(seed)
    return tf.VideoMAEModel(tf.VideoMAEConfig(**TINY_VISION, num_frames=4, tubelet_size=2, **config))


# The default initializer_range (0.02) leaves random blocks close to the identity: neighbouring
# layers then differ by about as much as bf16 rounding does. 0.2 makes a wrong layer stand out.
INIT = 0.2
KINDS = ["wavlm-large", "hubert-large", "clip", "videomae"]
# (spec, the spec of another layer whose output must be much farther away than bf16 rounding)
SPECS = {
    "wavlm-large": ("wavlm-large:2", "wavlm-large:1"),
    "hubert-large": ("hubert-large:2", "hubert-large:1"),
    "clip": ("clip", "clip:2"),  # pooled (final layer norm) vs the raw CLS token of the same block
    "videomae": ("videomae:2", "videomae:1"),
}


def tiny_model(kind: str, seed: int = 0):
    """A small random-initialised model of the encoder family ``kind`` (weights at ``INIT``)."""
    if kind == "clip":
        return tiny_clip(seed, initializer_range=INIT)
    if kind == "videomae":
        return tiny_videomae(seed, initializer_range=INIT)
    return tiny_audio_model(kind, seed, initializer_range=INIT)


def random_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def inputs(kind: str) -> list[np.ndarray]:
    """Two clips of different lengths; video frames neither square nor the model's size."""
    if kind in ("clip", "videomae"):
        return [random_frames(9, 40, 56, seed=1), random_frames(3, 48, 36, seed=2)]
    rng = np.random.default_rng(0)
    return [rng.normal(size=n).astype(np.float32) for n in (3000, 2400)]


def relative_error(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """``|a - b| / |b|`` over the concatenated arrays."""
    a, b = np.concatenate(a), np.concatenate(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))
