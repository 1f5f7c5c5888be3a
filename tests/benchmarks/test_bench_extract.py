"""The extraction benchmark's GPU stand-in runs the real encoder classes (benchmarks/bench_extract.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_extract  # noqa: E402


def test_the_stand_in_model_gives_the_real_shapes():
    wavlm = bench_extract.sleeping_encoder("wavlm-large:12", batch_size=None)
    assert wavlm.batch_size == 32 and wavlm.dim == 1024 and type(wavlm).__name__ == "HFAudioEncoder"
    out = wavlm.encode([np.random.default_rng(0).normal(size=n).astype(np.float32) for n in (80_000, 40_000)])
    assert [o.shape for o in out] == [(249, 1024), (124, 1024)]
    mae = bench_extract.sleeping_encoder("videomae", batch_size=None)
    frames = np.zeros((150, 224, 224, 3), np.uint8)
    with bench_extract.gpu_stand_ins():
        assert [o.shape for o in mae.encode([frames])] == [(9, 1024)]


def test_simulate_gpu_end_to_end(tmp_path, capsys):
    report = tmp_path / "sim.json"
    assert bench_extract.main(["--encoders", "wavlm-large:12,clip", "--simulate-gpu", "--clips", "2",
                               "--seconds", "1", "--size", "160x96", "--fps", "10", "--simulate-seconds", "0.02",
                               "--workers", "0", "--json", str(report)]) == 0
    got = json.loads(report.read_text())
    assert set(got["simulated"]) == {"wavlm-large-l12", "clip"}
    for row in got["simulated"].values():
        assert row["clips_per_s"] > 0 and 0 < row["share"] and row["decode_clips_per_s_per_process"] > 0
    assert got["failed"] == 0
    assert "of the H100 ceiling" in capsys.readouterr().out
