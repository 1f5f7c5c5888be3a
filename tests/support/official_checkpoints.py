"""Random state dicts in the official checkpoint layouts (shapes scaled down), and plain references.

The layouts are written out here key by key from the official model code -- VideoMAEv2's
``models/modeling_finetune.py`` (``VisionTransformer``, mean pooling, q/v biases), the
Video-Swin-Transformer backbone (``mmaction/models/backbones/swin_transformer.py``, saved by
mmcv as ``{"meta", "state_dict": {"backbone.*", "cls_head.*"}}``), torchvision's
``SwinTransformer3d`` (``features.N.M.*``) and ImageBind's ``ImageBindModel`` (six towers) --
independently of the package's own key maps, so that a loader that drops or renames a key fails.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

SEED = 0


def _rand(shape, gen: torch.Generator, std: float = 0.2) -> torch.Tensor:
    return torch.randn(shape, generator=gen) * std


# ------------------------------------------------------------------------------------- VideoMAEv2
TINY_V2 = dict(width=32, depth=2, heads=2, mlp=48, patch=16, tubelet=2, frames=4, image_size=32)


def videomaev2_state(*, width=32, depth=2, mlp=48, patch=16, tubelet=2, classes=7, seed=SEED) -> dict:
    """A fine-tuned VideoMAEv2 ``VisionTransformer`` (``use_mean_pooling=True``, ``qkv_bias=True``)."""
    g = torch.Generator().manual_seed(seed)
    s = {"patch_embed.proj.weight": _rand((width, 3, tubelet, patch, patch), g, 0.05),
         "patch_embed.proj.bias": _rand((width,), g)}
    for i in range(depth):
        b = f"blocks.{i}."
        s.update({
            b + "norm1.weight": 1 + _rand((width,), g), b + "norm1.bias": _rand((width,), g),
            b + "attn.q_bias": _rand((width,), g), b + "attn.v_bias": _rand((width,), g),
            b + "attn.qkv.weight": _rand((3 * width, width), g), b + "attn.proj.weight": _rand((width, width), g),
            b + "attn.proj.bias": _rand((width,), g),
            b + "norm2.weight": 1 + _rand((width,), g), b + "norm2.bias": _rand((width,), g),
            b + "mlp.fc1.weight": _rand((mlp, width), g), b + "mlp.fc1.bias": _rand((mlp,), g),
            b + "mlp.fc2.weight": _rand((width, mlp), g), b + "mlp.fc2.bias": _rand((width,), g),
        })
    s.update({"fc_norm.weight": 1 + _rand((width,), g), "fc_norm.bias": _rand((width,), g),
              "head.weight": _rand((classes, width), g), "head.bias": _rand((classes,), g)})
    return s


def sinusoid_table(n: int, d: int) -> torch.Tensor:
    pos = np.arange(n)[:, None] / np.power(10000, 2 * (np.arange(d) // 2) / d)[None, :]
    pos[:, 0::2], pos[:, 1::2] = np.sin(pos[:, 0::2]), np.cos(pos[:, 1::2])
    return torch.tensor(pos, dtype=torch.float32)


def videomaev2_reference(state: dict, x: torch.Tensor, heads: int, *, layer: int | None = None) -> torch.Tensor:
    """The official ``forward_features`` written plainly: ``x`` (B, 3, T, H, W) -> (B, D).

    ``layer``: the token mean of hidden state ``layer`` instead (no ``fc_norm``).
    """
    w = state["patch_embed.proj.weight"]
    t = torch.nn.functional.conv3d(x, w, state["patch_embed.proj.bias"], stride=w.shape[2:]).flatten(2).transpose(1, 2)
    t = t + sinusoid_table(t.shape[1], t.shape[2])
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    if layer == 0:
        return t.mean(1)
    for i in range(depth):
        p = f"blocks.{i}."
        y = F.layer_norm(t, t.shape[-1:], state[p + "norm1.weight"], state[p + "norm1.bias"], 1e-6)
        bias = torch.cat([state[p + "attn.q_bias"], torch.zeros_like(state[p + "attn.q_bias"]), state[p + "attn.v_bias"]])
        qkv = (y @ state[p + "attn.qkv.weight"].T + bias).reshape(t.shape[0], t.shape[1], 3, heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        a = ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        y = (a @ v).transpose(1, 2).reshape(t.shape)
        t = t + y @ state[p + "attn.proj.weight"].T + state[p + "attn.proj.bias"]
        y = F.layer_norm(t, t.shape[-1:], state[p + "norm2.weight"], state[p + "norm2.bias"], 1e-6)
        y = F.gelu(y @ state[p + "mlp.fc1.weight"].T + state[p + "mlp.fc1.bias"])
        t = t + y @ state[p + "mlp.fc2.weight"].T + state[p + "mlp.fc2.bias"]
        if layer == i + 1:
            return t.mean(1)
    return F.layer_norm(t.mean(1), t.shape[-1:], state["fc_norm.weight"], state["fc_norm.bias"], 1e-6)


# ------------------------------------------------------------------------------------- Video Swin
TINY_SWIN = dict(embed_dim=8, depths=(2, 2, 1, 1), heads=(1, 2, 2, 4), window=(4, 3, 3))


def swin_official_state(*, embed_dim=8, depths=(2, 2, 1, 1), heads=(1, 2, 2, 4), window=(4, 3, 3),
                        patch=(2, 4, 4), classes=5, seed=SEED) -> dict:
    """An mmaction Video Swin checkpoint: ``{"meta", "state_dict": {"backbone.*", "cls_head.*"}}``."""
    g = torch.Generator().manual_seed(seed)
    wd, wh, ww = window
    rows = (2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1)
    n = wd * wh * ww
    s = {"backbone.patch_embed.proj.weight": _rand((embed_dim, 3, *patch), g, 0.1),
         "backbone.patch_embed.proj.bias": _rand((embed_dim,), g),
         "backbone.patch_embed.norm.weight": 1 + _rand((embed_dim,), g),
         "backbone.patch_embed.norm.bias": _rand((embed_dim,), g)}
    for i, (depth, h) in enumerate(zip(depths, heads)):
        dim = embed_dim * 2**i
        for j in range(depth):
            b = f"backbone.layers.{i}.blocks.{j}."
            s.update({
                b + "norm1.weight": 1 + _rand((dim,), g), b + "norm1.bias": _rand((dim,), g),
                b + "attn.relative_position_bias_table": _rand((rows, h), g, 1.0),
                b + "attn.relative_position_index": official_relative_index(window),
                b + "attn.qkv.weight": _rand((3 * dim, dim), g), b + "attn.qkv.bias": _rand((3 * dim,), g),
                b + "attn.proj.weight": _rand((dim, dim), g), b + "attn.proj.bias": _rand((dim,), g),
                b + "norm2.weight": 1 + _rand((dim,), g), b + "norm2.bias": _rand((dim,), g),
                b + "mlp.fc1.weight": _rand((4 * dim, dim), g), b + "mlp.fc1.bias": _rand((4 * dim,), g),
                b + "mlp.fc2.weight": _rand((dim, 4 * dim), g), b + "mlp.fc2.bias": _rand((dim,), g),
            })
        if i < len(depths) - 1:
            d = f"backbone.layers.{i}.downsample."
            s.update({d + "reduction.weight": _rand((2 * dim, 4 * dim), g), d + "norm.weight": 1 + _rand((4 * dim,), g),
                      d + "norm.bias": _rand((4 * dim,), g)})
    width = embed_dim * 2 ** (len(depths) - 1)
    s.update({"backbone.norm.weight": 1 + _rand((width,), g), "backbone.norm.bias": _rand((width,), g),
              "cls_head.fc_cls.weight": _rand((classes, width), g), "cls_head.fc_cls.bias": _rand((classes,), g)})
    assert all(v.numel() for v in s.values()) and n
    return {"meta": {"epoch": 30}, "state_dict": s}


def official_relative_index(window) -> torch.Tensor:
    """The official ``relative_position_index`` buffer, by a plain loop over position pairs."""
    wd, wh, ww = window
    pos = [(d, h, w) for d in range(wd) for h in range(wh) for w in range(ww)]
    out = torch.empty((len(pos), len(pos)), dtype=torch.int64)
    for a, (d1, h1, w1) in enumerate(pos):
        for b, (d2, h2, w2) in enumerate(pos):
            out[a, b] = ((d1 - d2 + wd - 1) * (2 * wh - 1) * (2 * ww - 1) + (h1 - h2 + wh - 1) * (2 * ww - 1)
                         + (w1 - w2 + ww - 1))
    return out


def swin_to_torchvision(official: dict, *, prefix: str = "module.") -> dict:
    """The same weights in torchvision's ``SwinTransformer3d`` layout (as the paper's checkpoint:
    saved from ``DataParallel``, with its own classifier)."""
    out = {}
    for key, value in official["state_dict"].items():
        if key.startswith("cls_head."):
            out[prefix + "head." + key.split(".")[-1]] = value
            continue
        key = key[len("backbone."):]
        parts = key.split(".")
        if parts[0] == "layers" and parts[2] == "blocks":
            rest = ".".join(parts[4:]).replace("mlp.fc1", "mlp.0").replace("mlp.fc2", "mlp.3")
            key = f"features.{2 * int(parts[1])}.{parts[3]}.{rest}"
        elif parts[0] == "layers" and parts[2] == "downsample":
            key = f"features.{2 * int(parts[1]) + 1}.{'.'.join(parts[3:])}"
        out[prefix + key] = value
    return out


# ------------------------------------------------------------------------------------- ImageBind
TINY_IB = dict(vision=dict(width=16, depth=2, heads=2, patch=14, image_size=28),
               audio=dict(width=16, depth=2, heads=2), out_dim=12)


def _trunk(prefix: str, width: int, depth: int, g, *, bias_kv: bool, pre_ln: bool) -> dict:
    s = {}
    if pre_ln:
        s[prefix + "pre_transformer_layer.0.weight"] = 1 + _rand((width,), g)
        s[prefix + "pre_transformer_layer.0.bias"] = _rand((width,), g)
    for i in range(depth):
        b = f"{prefix}blocks.{i}."
        s.update({
            b + "attn.in_proj_weight": _rand((3 * width, width), g), b + "attn.in_proj_bias": _rand((3 * width,), g),
            b + "attn.out_proj.weight": _rand((width, width), g), b + "attn.out_proj.bias": _rand((width,), g),
            b + "norm_1.weight": 1 + _rand((width,), g), b + "norm_1.bias": _rand((width,), g),
            b + "mlp.fc1.weight": _rand((4 * width, width), g), b + "mlp.fc1.bias": _rand((4 * width,), g),
            b + "mlp.fc2.weight": _rand((width, 4 * width), g), b + "mlp.fc2.bias": _rand((width,), g),
            b + "norm_2.weight": 1 + _rand((width,), g), b + "norm_2.bias": _rand((width,), g),
        })
        if bias_kv:
            s[b + "attn.bias_k"] = _rand((1, 1, width), g)
            s[b + "attn.bias_v"] = _rand((1, 1, width), g)
    return s


def imagebind_state(*, vision=TINY_IB["vision"], audio=TINY_IB["audio"], out_dim=TINY_IB["out_dim"], seed=SEED) -> dict:
    """An ``ImageBindModel`` state dict: the vision and audio towers in full, and a few keys of each
    other tower (text, depth, thermal, IMU) as the real file has them."""
    g = torch.Generator().manual_seed(seed)
    v, a = vision, audio
    s = {"modality_preprocessors.vision.cls_token": _rand((1, 1, v["width"]), g),
         "modality_preprocessors.vision.rgbt_stem.proj.1.weight": _rand((v["width"], 3, 2, v["patch"], v["patch"]), g, 0.05),
         "modality_preprocessors.vision.pos_embedding_helper.pos_embed":
             _rand((1, (v["image_size"] // v["patch"]) ** 2 + 1, v["width"]), g)}
    s.update(_trunk("modality_trunks.vision.", v["width"], v["depth"], g, bias_kv=False, pre_ln=True))
    s.update({"modality_heads.vision.0.weight": 1 + _rand((v["width"],), g),
              "modality_heads.vision.0.bias": _rand((v["width"],), g),
              "modality_heads.vision.2.weight": _rand((out_dim, v["width"]), g)})
    s.update({"modality_preprocessors.audio.cls_token": _rand((1, 1, a["width"]), g),
              "modality_preprocessors.audio.rgbt_stem.proj.weight": _rand((a["width"], 1, 16, 16), g, 0.05),
              "modality_preprocessors.audio.rgbt_stem.norm_layer.weight": 1 + _rand((a["width"],), g),
              "modality_preprocessors.audio.rgbt_stem.norm_layer.bias": _rand((a["width"],), g),
              "modality_preprocessors.audio.pos_embedding_helper.pos_embed": _rand((1, 229, a["width"]), g)})
    s.update(_trunk("modality_trunks.audio.", a["width"], a["depth"], g, bias_kv=True, pre_ln=False))
    s.update({"modality_heads.audio.0.weight": 1 + _rand((a["width"],), g),
              "modality_heads.audio.0.bias": _rand((a["width"],), g),
              "modality_heads.audio.2.weight": _rand((out_dim, a["width"]), g),
              "modality_postprocessors.audio.1.log_logit_scale": torch.tensor(math.log(20.0))})
    s.update({"modality_preprocessors.text.token_embedding.weight": _rand((50, 8), g),
              "modality_trunks.text.blocks.0.attn.in_proj_weight": _rand((24, 8), g),
              "modality_heads.text.proj.1.weight": _rand((out_dim, 8), g),
              "modality_postprocessors.text.1.log_logit_scale": torch.tensor(2.6),
              "modality_preprocessors.depth.cls_token": _rand((1, 1, 8), g),
              "modality_trunks.thermal.blocks.0.attn.bias_k": _rand((1, 1, 8), g),
              "modality_heads.imu.3.weight": _rand((out_dim, 8), g),
              "modality_postprocessors.depth.1.log_logit_scale": torch.tensor(1.6)})
    return s


def imagebind_reference(state: dict, tower: str, x: torch.Tensor, heads: int) -> torch.Tensor:
    """``ImageBindModel``'s forward for one tower, written plainly (explicit attention, the audio
    tower's learned key/value bias appended as one more position)."""
    pre, trunk, head = (f"modality_{p}.{tower}." for p in ("preprocessors", "trunks", "heads"))
    if tower == "vision":
        w = state[pre + "rgbt_stem.proj.1.weight"]
        clip = torch.stack([x, x], dim=2)
        t = F.conv3d(clip, w, stride=w.shape[2:]).flatten(2).transpose(1, 2)
    else:
        w = state[pre + "rgbt_stem.proj.weight"]
        t = F.conv2d(x, w, stride=10).flatten(2).transpose(1, 2)
        t = F.layer_norm(t, t.shape[-1:], state[pre + "rgbt_stem.norm_layer.weight"],
                         state[pre + "rgbt_stem.norm_layer.bias"], 1e-5)
    cls = state[pre + "cls_token"].expand(len(t), -1, -1)
    t = torch.cat([cls, t], 1) + state[pre + "pos_embedding_helper.pos_embed"]
    if trunk + "pre_transformer_layer.0.weight" in state:
        t = F.layer_norm(t, t.shape[-1:], state[trunk + "pre_transformer_layer.0.weight"],
                         state[trunk + "pre_transformer_layer.0.bias"], 1e-6)
    depth = 1 + max(int(k.split(".")[3]) for k in state if k.startswith(trunk + "blocks."))
    for i in range(depth):
        p = f"{trunk}blocks.{i}."
        y = F.layer_norm(t, t.shape[-1:], state[p + "norm_1.weight"], state[p + "norm_1.bias"], 1e-6)
        q, k, v = (y @ state[p + "attn.in_proj_weight"].T + state[p + "attn.in_proj_bias"]).chunk(3, dim=-1)
        if p + "attn.bias_k" in state:
            k = torch.cat([k, state[p + "attn.bias_k"].expand(len(k), 1, -1)], 1)
            v = torch.cat([v, state[p + "attn.bias_v"].expand(len(v), 1, -1)], 1)
        split = lambda z: z.reshape(z.shape[0], z.shape[1], heads, -1).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        a = ((q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])).softmax(-1)
        y = (a @ v).transpose(1, 2).reshape(t.shape)
        t = t + y @ state[p + "attn.out_proj.weight"].T + state[p + "attn.out_proj.bias"]
        y = F.layer_norm(t, t.shape[-1:], state[p + "norm_2.weight"], state[p + "norm_2.bias"], 1e-6)
        y = F.gelu(y @ state[p + "mlp.fc1.weight"].T + state[p + "mlp.fc1.bias"])
        t = t + y @ state[p + "mlp.fc2.weight"].T + state[p + "mlp.fc2.bias"]
    t = F.layer_norm(t, t.shape[-1:], state[head + "0.weight"], state[head + "0.bias"], 1e-6)[:, 0]
    out = F.normalize(t @ state[head + "2.weight"].T, dim=-1)
    scale = f"modality_postprocessors.{tower}.1.log_logit_scale"
    return out * state[scale].exp().clamp(max=100) if scale in state else out


def save(obj, path) -> str:
    torch.save(obj, path)
    return str(path)


# ------------------------------------------------------------------------------------- tiny encoders
CHECKPOINT_KINDS = ["videomaev2", "video-swin", "imagebind-vision", "imagebind-audio"]


def tiny_checkpoint_encoder(kind: str, tmp_path, **kwargs):
    """An encoder of ``kind`` on a tiny random checkpoint in the official layout, with inputs for it."""
    from blemore.encoders import imagebind, video_swin, videomae_v2
    from tests.support.tiny_models import random_frames

    clips = [random_frames(9, 40, 56, seed=1), random_frames(3, 48, 36, seed=2)]
    if kind == "videomaev2":
        path = save({"module": videomaev2_state()}, tmp_path / "v2.pth")
        model = videomae_v2.load_model(path, heads=2, frames=TINY_V2["frames"], image_size=TINY_V2["image_size"])
        return videomae_v2.VideoMAEv2Encoder(model=model, **kwargs), clips
    if kind == "video-swin":
        path = save(swin_official_state(), tmp_path / "swin.pth")
        enc = video_swin.VideoSwinEncoder(model=video_swin.load_model(path), window=8, stride=4, chunk_frames=24,
                                          image_size=32, resize=40, **kwargs)
        return enc, clips
    path = save(imagebind_state(), tmp_path / "ib.pth")
    tower = kind.split("-")[1]
    model = imagebind.load_tower(path, tower, heads=2)
    if tower == "vision":
        return imagebind.ImageBindVisionEncoder(model=model, **kwargs), clips
    rng = np.random.default_rng(0)
    return imagebind.ImageBindAudioEncoder(model=model, **kwargs), [
        (0.1 * rng.standard_normal(n)).astype(np.float32) for n in (40000, 9000)]
