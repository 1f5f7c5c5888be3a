"""The model encoders on a CUDA GPU: same features as on the CPU, within bf16 rounding.

Runs only where torch sees a GPU (never in CI, which has none); on a GPU machine:
``PYTHONPATH=src python3 -m pytest -q tests/extraction/test_cuda.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support.avclips import make_clip
from blemore.encoders import get_encoder
from blemore.extraction.local import extract

from tests.support.tiny_models import KINDS, SPECS, inputs as _inputs, relative_error as _rel, tiny_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


@pytest.mark.parametrize("kind", KINDS)
def test_cuda_bf16_matches_cpu_fp32(kind):
    spec, other_spec = SPECS[kind]
    cpu = get_encoder(spec, model=tiny_model(kind), device="cpu", precision="fp32", batch_size=2)
    gpu = get_encoder(spec, model=tiny_model(kind), device="cuda", batch_size=2)  # auto: bf16 on CUDA
    assert gpu.settings()["precision"] == "bf16" and gpu.settings()["device_type"] == "cuda"
    ref, got = cpu.encode(_inputs(kind)), gpu.encode(_inputs(kind))
    assert [g.shape for g in got] == [r.shape for r in ref]
    assert all(g.dtype == np.float32 and np.isfinite(g).all() for g in got)
    other = get_encoder(other_spec, model=tiny_model(kind), precision="fp32", batch_size=2).encode(_inputs(kind))
    assert _rel(got, ref) < 0.03 and _rel(other, ref) > 10 * _rel(got, ref)
    fp32 = get_encoder(spec, model=tiny_model(kind), device="cuda", precision="fp32", batch_size=2)
    assert _rel(fp32.encode(_inputs(kind)), ref) < 5e-3  # TF32 convolutions at most


def test_cuda_extraction_end_to_end_with_decoding_processes(tmp_path):
    (tmp_path / "clips").mkdir()
    for k in range(3):
        make_clip(tmp_path / "clips" / f"A10{k}_ang_int1_ver1.mov", seconds=0.6, size=(96, 64), freq=300 + 40 * k)
    encoders = [get_encoder("wavlm-large:2", model=tiny_model("wavlm-large"), device="cuda"),
                get_encoder("clip", model=tiny_model("clip"), device="cuda")]
    summary = extract(tmp_path / "clips", encoders=encoders, out=tmp_path / "f", progress=False, device="cuda",
                      workers=2)
    assert (summary.done, summary.failed) == (6, 0)
    for name in ("wavlm-large-l2", "clip"):
        for p in (tmp_path / "f" / name).glob("*.npy"):
            a = np.load(p)
            assert a.dtype == np.float32 and np.isfinite(a).all() and len(a) > 0
