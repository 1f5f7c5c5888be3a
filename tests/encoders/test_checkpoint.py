"""Checkpoint files: finding them, reading the official wrappings, strict loading, one-line errors."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from blemore.cli import app
from blemore.encoders import checkpoint as ck
from blemore.encoders import get_encoder
from blemore.errors import BlemoreError
from tests.support.official_checkpoints import CHECKPOINT_KINDS, tiny_checkpoint_encoder
from tests.support.tiny_models import relative_error

torch.set_num_threads(1)


def test_a_missing_checkpoint_names_the_file_and_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv(ck.WEIGHTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BlemoreError) as err:
        ck.find_checkpoint(None, default="imagebind_huge.pth", encoder="imagebind-vision",
                           source="https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth")
    msg = str(err.value)
    assert "\n" not in msg
    assert "'imagebind_huge.pth' not found" in msg and "$BLEMORE_WEIGHTS is not set" in msg
    assert "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth" in msg
    assert "imagebind-vision=/path/to/imagebind_huge.pth" in msg


def test_a_bare_name_is_found_in_the_weights_folder_and_a_path_as_given(tmp_path, monkeypatch):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "a.pth").write_bytes(b"x")
    monkeypatch.setenv(ck.WEIGHTS_ENV, str(tmp_path / "w"))
    monkeypatch.chdir(tmp_path)
    assert ck.find_checkpoint(None, default="a.pth", encoder="e", source="s") == tmp_path / "w" / "a.pth"
    assert ck.find_checkpoint(str(tmp_path / "w" / "a.pth"), default="b.pth", encoder="e", source="s").name == "a.pth"
    with pytest.raises(BlemoreError, match=r"checkpoint 'a.pth' not found \(.*/x/a.pth\)"):
        ck.find_checkpoint(str(tmp_path / "x" / "a.pth"), default="a.pth", encoder="e", source="s")


@pytest.mark.parametrize("wrap", [
    lambda s: s,
    lambda s: {"model": s, "epoch": 3, "args": argparse.Namespace(lr=1e-3)},  # VideoMAEv2 training checkpoints
    lambda s: {"module": s},
    lambda s: {"meta": {"epoch": 30}, "state_dict": s},  # mmcv
    lambda s: {f"module.{k}": v for k, v in s.items()},  # saved from DataParallel
])
def test_read_checkpoint_unwraps_what_the_official_loaders_unwrap(tmp_path, wrap):
    state = {"a.weight": torch.ones(2, 3), "b": torch.zeros(1)}
    torch.save(wrap(state), tmp_path / "c.pth")
    got = ck.read_checkpoint(tmp_path / "c.pth", encoder="e")
    assert set(got) == {"a.weight", "b"} and torch.equal(got["a.weight"], state["a.weight"])


@pytest.mark.parametrize("content, match", [
    (b"not a checkpoint at all", "is not a readable PyTorch checkpoint"),
    (None, "holds a list, expected a state dict"),
])
def test_unreadable_checkpoints_are_one_line_errors(tmp_path, content, match):
    path = tmp_path / "bad.pth"
    if content is None:
        torch.save([torch.zeros(1)], path)
    else:
        path.write_bytes(content)
    with pytest.raises(BlemoreError, match=match) as err:
        ck.read_checkpoint(path, encoder="e")
    assert "\n" not in str(err.value)


def test_a_pickled_object_is_refused_with_a_way_out(tmp_path):
    from fractions import Fraction

    torch.save({"model": {"a": torch.zeros(1)}, "lr": Fraction(1, 3)}, tmp_path / "c.pth")
    with pytest.raises(BlemoreError, match=r"beside the weights \(fractions.Fraction\) that cannot be loaded safely.*save its weights alone") as err:
        ck.read_checkpoint(tmp_path / "c.pth", encoder="e")
    assert "\n" not in str(err.value)


def _model():
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))


def test_load_strict_fills_a_meta_model_and_copies_into_a_real_one():
    state = {k: torch.randn_like(v) for k, v in _model().state_dict().items()}
    with torch.device("meta"):
        meta = _model()
    ck.load_strict(meta, state, path="p", encoder="e", layout="L")
    real = _model()
    ck.load_strict(real, state, path="p", encoder="e", layout="L")
    for m in (meta, real):
        for k, v in m.state_dict().items():
            assert not v.is_meta and torch.equal(v, state[k])


def test_a_half_precision_checkpoint_loads_as_float32():
    state = {k: torch.randn_like(v).half() for k, v in _model().state_dict().items()}
    with torch.device("meta"):
        meta = _model()
    ck.load_strict(meta, state, path="p", encoder="e", layout="L")
    assert all(v.dtype == torch.float32 for v in meta.state_dict().values())
    assert meta(torch.randn(1, 3)).dtype == torch.float32


@pytest.mark.parametrize("edit, parts", [
    (lambda s: s.pop("1.bias"), ["1 missing (1.bias)"]),
    (lambda s: s.update({"head.weight": torch.zeros(1)}), ["1 unexpected (head.weight)"]),
    (lambda s: s.update({"0.weight": torch.zeros(3, 3)}), ["1 of another shape (0.weight (3, 3) vs (2, 3))"]),
    (lambda s: (s.pop("0.bias"), s.update({"x": torch.zeros(1)})), ["1 missing (0.bias)", "1 unexpected (x)"]),
])
def test_load_strict_names_what_does_not_match_in_one_line(edit, parts):
    state = dict(_model().state_dict())
    edit(state)
    with pytest.raises(BlemoreError) as err:
        ck.load_strict(_model(), state, path="w.pth", encoder="enc", layout="Tiny")
    msg = str(err.value)
    assert msg.startswith("enc: w.pth does not match the Tiny layout: ") and "\n" not in msg
    for part in parts:
        assert part in msg


def test_effective_precision_follows_the_hugging_face_encoders():
    assert ck.effective_precision("auto", "cuda") == "bf16"
    assert ck.effective_precision("auto", "cpu") == "fp32"
    assert ck.effective_precision("bf16", "cpu") == "bf16"
    with pytest.raises(BlemoreError, match="expected one of auto, fp32, bf16"):
        ck.effective_precision("half", "cpu")


@pytest.mark.parametrize("spec", ["videomaev2", "videomaev2-base", "video-swin", "video-swin-t", "imagebind-vision",
                                  "imagebind-audio"])
def test_every_checkpoint_encoder_says_which_file_it_needs(spec, tmp_path, monkeypatch):
    monkeypatch.delenv(ck.WEIGHTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BlemoreError, match=r"checkpoint '.+\.pth' not found .* download it from https://"):
        get_encoder(spec)


@pytest.mark.parametrize("spec, match", [
    ("video-swin:3", "has no @revision or :layers"),
    ("imagebind-vision@main", "has no @revision or :layers"),
    ("videomaev2@v1", "has no @revision"),
])
def test_checkpoint_encoders_refuse_what_they_cannot_do(spec, match):
    with pytest.raises(BlemoreError, match=match):
        get_encoder(spec)


def test_cli_extract_without_the_checkpoint_is_one_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.delenv(ck.WEIGHTS_ENV, raising=False)
    (tmp_path / "clips").mkdir()
    result = CliRunner().invoke(app, ["extract", str(tmp_path / "clips"), "--encoders",
                                      f"video-swin={tmp_path}/swin.pth", "--out", str(tmp_path / "f")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "swin.pth: no such folder or file (local weights)" in lines[0]
    assert not (tmp_path / "f").exists()


def test_store_name_never_holds_the_path():
    assert ck.store_name("videomaev2", None, "a.pth") == "videomaev2"
    assert ck.store_name("videomaev2", "/x/y/a.pth", "a.pth") == "videomaev2"
    assert ck.store_name("videomaev2", "/x/My Weights.pth", "a.pth") == "videomaev2-my-weights"


def test_blemore_encoders_lists_the_checkpoint_encoders_with_width_and_rate():
    result = CliRunner().invoke(app, ["encoders"])
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    for name, file, what in [
        ("videomaev2", "vit_g_hybrid_pt_1200e_k710_ft.pth", "1408 per 16-frame window"),
        ("videomaev2-base", "vit_b_k710_dl_from_giant.pth", "768 per 16-frame window"),
        ("video-swin", "swin_base_patch244_window877_kinetics400_22k.pth", "1024 per 32-frame window every 16"),
        ("imagebind-vision", "imagebind_huge.pth", "1024 per frame"),
        ("imagebind-audio", "imagebind_huge.pth", "1024 per 2 s"),
    ]:
        assert file in lines[name] and what in " ".join(lines[name].split())


def test_a_face_crop_asks_the_decoder_for_the_face_square():
    pytest.importorskip("mediapipe")
    from blemore.encoders import imagebind, videomae_v2
    from blemore.encoders.facecrop import FaceCrop

    arch = imagebind.TowerArch("vision", 16, 1, 2, out_dim=8, image_size=28)
    enc = imagebind.ImageBindVisionEncoder(model=imagebind.build_tower(arch), face_crop=True)
    assert enc.name == "imagebind-vision-face" and enc.settings()["face_crop"] is True
    assert (enc.video.transform, enc.video.short_side) == (FaceCrop(), 56)
    model = videomae_v2.build_model(videomae_v2.VideoMAEv2Arch(32, 1, 2, 48, frames=4, image_size=32))
    enc = videomae_v2.VideoMAEv2Encoder(model=model, face_crop=True)
    assert enc.name == "videomaev2-face" and enc.video.transform == FaceCrop()


def test_the_docstring_examples_run():
    import doctest

    from blemore.encoders import fbank, imagebind, swin3d, video_swin, videomae_v2

    for module in (ck, fbank, imagebind, swin3d, video_swin, videomae_v2):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0 and result.attempted > 0, module.__name__


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
@pytest.mark.parametrize("kind", CHECKPOINT_KINDS)
def test_cuda_bf16_matches_cpu_fp32(kind, tmp_path):
    cpu, inputs = tiny_checkpoint_encoder(kind, tmp_path, precision="fp32")
    gpu, _ = tiny_checkpoint_encoder(kind, tmp_path, device="cuda")  # auto: bf16 on CUDA
    assert gpu.settings()["precision"] == "bf16" and gpu.settings()["device_type"] == "cuda"
    ref, got = cpu.encode(inputs), gpu.encode(inputs)
    assert [g.shape for g in got] == [r.shape for r in ref]
    assert all(g.dtype == np.float32 and np.isfinite(g).all() for g in got)
    assert relative_error(got, ref) < 0.03
    fp32, _ = tiny_checkpoint_encoder(kind, tmp_path, device="cuda", precision="fp32")
    assert relative_error(fp32.encode(inputs), ref) < 5e-3  # TF32 at most


@pytest.mark.parametrize("kind", CHECKPOINT_KINDS)
def test_each_encoder_runs_end_to_end_on_a_tiny_checkpoint(kind, tmp_path):
    enc, inputs = tiny_checkpoint_encoder(kind, tmp_path, precision="bf16")
    out = enc.encode(inputs)
    assert len(out) == len(inputs) and all(o.dtype == np.float32 and o.shape[1] == enc.dim and len(o) for o in out)
    assert enc.settings()["precision"] == "bf16" and enc.batch_size == 1


@pytest.mark.parametrize("spec, message", [
    ("video-swin={ckpt}", "layout: no layers.N.blocks.M.* (or features.N.M.*) keys"),
    ("imagebind-audio={ckpt}", "does not match the ImageBind (audio tower) layout"),
    ("video-swin={ckpt}:2", "has no @revision or :layers"),
])
def test_cli_extract_with_a_file_of_another_model_is_one_line_and_exit_2(tmp_path, spec, message):
    from tests.support.official_checkpoints import save, videomaev2_state

    ckpt = save({"module": videomaev2_state()}, tmp_path / "vit.pth")
    (tmp_path / "clips").mkdir()
    result = CliRunner().invoke(app, ["extract", str(tmp_path / "clips"), "--encoders", spec.format(ckpt=ckpt),
                                      "--out", str(tmp_path / "f")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "f").exists()
