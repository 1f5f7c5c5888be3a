"""The generated BLEMORE-style dataset: names, metadata, folds, media, faces, learnable signal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.support.synthetic_shared import TINY, shared_dataset
from blemore.cli import app
from blemore.data import synthetic as S
from blemore.errors import BlemoreError
from blemore.labels import LABEL_INDEX, VALID_LABELS, parse_clip_name


from tests.support.real_clips import CLIPS_CSV, needs_real_clips  # noqa: E402
REAL = CLIPS_CSV



@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> S.GeneratedDataset:
    """6 actors (1 held out), 1-second clips; shared with test_demo.py."""
    return shared_dataset(tmp_path_factory)


# --------------------------------------------------------------------------- the plan (no media)


@settings(max_examples=12, deadline=None)
@given(actors=st.integers(min_value=S.MIN_ACTORS, max_value=30), seed=st.integers(0, 2**31 - 1))
def test_plan_is_shaped_like_blemore(actors: int, seed: int) -> None:
    plan = S.plan_dataset(actors=actors, seed=seed)
    assert len(plan) == 54 * actors
    assert plan["actor"].nunique() == actors
    # Every descriptive name parses back to its planned label, actor and intensity.
    for row in plan.itertuples(index=False):
        c = parse_clip_name(row.clip)
        assert c.actor == row.actor and c.label.name == row.label
        assert LABEL_INDEX[row.label] == row.label_index
        assert (c.intensity or None) == (None if pd.isna(row.intensity) else row.intensity)
    # One clip per label x intensity / situation per actor: 4 per single, 1 per blend label.
    per_actor = plan.groupby(["actor", "label"]).size().unstack(fill_value=0)
    assert per_actor.shape[1] == 36
    singles = [l.name for l in VALID_LABELS if not l.is_blend]
    assert (per_actor[singles] == 4).all().all()
    assert (per_actor.drop(columns=singles) == 1).all().all()
    # About 20% of the actors held out; 5 actor-disjoint folds of near-equal size over the rest.
    test_actors = set(plan.loc[plan.partition == "test", "actor"])
    train = plan[plan.partition == "train"]
    assert 1 <= len(test_actors) and test_actors.isdisjoint(train["actor"])
    assert abs(len(test_actors) - 0.2 * actors) <= 1
    assert plan.loc[plan.partition == "test", "fold"].isna().all()
    assert sorted(train["fold"].unique()) == [0, 1, 2, 3, 4]
    assert (train.groupby("actor")["fold"].nunique() == 1).all()
    sizes = train.groupby("fold")["actor"].nunique()
    assert sizes.max() - sizes.min() <= 1
    # Held-out clips are anonymised, numbered without gaps; training clips keep their names.
    test = plan[plan.partition == "test"]
    width = len(test["filename"].iloc[0]) - len("test_")
    assert sorted(test["filename"]) == [f"test_{k:0{width}d}" for k in range(1, len(test) + 1)]
    assert (train["filename"] == train["clip"]).all()


def test_plan_is_deterministic_in_the_seed() -> None:
    a, b = S.plan_dataset(actors=8, seed=1), S.plan_dataset(actors=8, seed=1)
    pd.testing.assert_frame_equal(a, b)
    c = S.plan_dataset(actors=8, seed=2)
    assert set(a["actor"]) != set(c["actor"])


@needs_real_clips
def test_label_frequencies_match_the_real_dataset() -> None:
    real = pd.read_csv(REAL)
    plan = S.plan_dataset(actors=58, seed=0)

    def shares(mix: pd.Series, e1: pd.Series) -> pd.Series:
        return pd.Series(np.where(mix.astype(bool), "blend", e1)).value_counts(normalize=True).sort_index()

    ours = shares(plan["label"].map(lambda n: VALID_LABELS[LABEL_INDEX[n]].is_blend),
                  plan["label"].map(lambda n: VALID_LABELS[LABEL_INDEX[n]].parts[0][0]))
    theirs = shares(real["mix"], real["emotion_1"])
    assert list(ours.index) == list(theirs.index)
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), atol=0.02)
    # The real clip count per actor is 54 for most actors; the real test share is 11 of 58.
    assert real.groupby("actor").size().median() == 54
    n_test = plan.loc[plan.partition == "test", "actor"].nunique()
    assert abs(n_test - real.loc[real.partition == "test", "actor"].nunique()) <= 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(actors=5), "--actors 5: need at least 6 actors"),
        (dict(duration=0.1), "--duration 0.1"),
        (dict(fps=1), "--fps 1"),
        (dict(size=101), "--size 101"),
    ],
)
def test_bad_parameters_raise_before_writing(tmp_path: Path, kwargs: dict, message: str) -> None:
    out = tmp_path / "data"
    with pytest.raises(BlemoreError, match=message.replace("(", r"\(").replace(".", r"\.")):
        S.generate_dataset(out, **kwargs, progress=False)
    assert not out.exists()


def test_refuses_a_folder_holding_something_else(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BlemoreError, match="not empty and holds no generated dataset"):
        S.generate_dataset(tmp_path, actors=6, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_cli_bad_actors_is_one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["generate", str(tmp_path / "d"), "--actors", "3"])
    assert result.exit_code == 2
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("blemore: error: --actors 3")
    assert not (tmp_path / "d").exists()


# --------------------------------------------------------------------------- expressions


def _spec(label: str, intensity: int | None = None, *, noise: float = 1.0) -> S.ClipSpec:
    params = S.DatasetParameters(actors=6, noise=noise)
    style = S._actor_styles(params, ["A101"])["A101"]
    return S.ClipSpec(clip="x", path="", label_index=LABEL_INDEX[label], intensity=intensity, seed=1,
                      actor=style, params=params)


def test_blend_dominant_emotion_leads_and_is_stronger() -> None:
    times = np.linspace(0, 2, 60)
    for seed in range(5):
        e = S.clip_expression(_spec("ang_hap_70_30"), times, np.random.default_rng(seed))
        ang, hap = e.weights[:, 0], e.weights[:, 3]
        assert ang.max() > hap.max() > 0
        assert np.argmax(ang > 0.05) < np.argmax(hap > 0.05)  # the dominant one starts first
        assert np.all(e.weights[:, [1, 2, 4, 5]] == 0)


def test_single_scales_with_intensity_and_neutral_is_still() -> None:
    times = np.linspace(0, 2, 60)
    peaks = [S.clip_expression(_spec("sad", k), times, np.random.default_rng(0)).weights[:, 4].max()
             for k in (1, 2, 3, 4)]
    assert np.all(np.diff(peaks) > 0)
    assert not S.clip_expression(_spec("neu"), times, np.random.default_rng(0)).weights.any()


def test_rendering_is_deterministic_and_audio_bounded() -> None:
    spec = _spec("fea", 4)
    spec = S.ClipSpec(**{**spec.__dict__, "params": S.DatasetParameters(actors=6, duration=1.0, fps=10, size=128)})
    f1, a1 = S.render_clip(spec)
    f2, a2 = S.render_clip(spec)
    assert f1.dtype == np.uint8 and f1.shape == (10, 128, 128, 3)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(a1, a2)
    assert a1.dtype == np.float32 and len(a1) == S.SAMPLE_RATE
    assert 0.01 < np.abs(a1).max() <= 1.0


def test_louder_voice_for_anger_than_sadness() -> None:
    """The vocal prototypes reach the waveform: anger is louder than sadness (same actor, seed)."""
    rms = {}
    for label in ("ang", "sad"):
        _, audio = S.render_clip(_spec(label, 4, noise=0.0))
        rms[label] = float(np.sqrt(np.mean(audio**2)))
    assert rms["ang"] > 2 * rms["sad"]


# --------------------------------------------------------------------------- the files


def test_files_metadata_and_folds(tiny: S.GeneratedDataset) -> None:
    from blemore.data.metadata import read_metadata

    root = tiny.root
    state = json.loads((root / "dataset.json").read_text())
    assert state["complete"] and state["parameters"]["actors"] == 6
    train = read_metadata(tiny.train_metadata)
    truth = read_metadata(tiny.test_truth)
    assert list(pd.read_csv(tiny.train_metadata).columns) == list(S.OFFICIAL_COLUMNS)
    assert list(pd.read_csv(tiny.test_metadata).columns) == list(S.OFFICIAL_COLUMNS)
    # Files on disk are exactly the metadata's clips.
    assert sorted(p.stem for p in tiny.train_dir.glob("*.mp4")) == sorted(train["filename"])
    assert sorted(p.stem for p in tiny.test_dir.glob("*.mp4")) == sorted(truth["filename"])
    assert not list(root.rglob(".*tmp*"))
    # Training names carry their label; folds are actor-disjoint.
    for row in train.itertuples(index=False):
        assert parse_clip_name(row.filename).label.name == row.label
    assert (train.groupby("actor")["fold"].nunique() == 1).all()
    assert sorted(train["fold"].unique()) == [0, 1, 2, 3, 4]
    # The test metadata says nothing but the file name; the truth file has the labels.
    test_meta = pd.read_csv(tiny.test_metadata)
    assert test_meta.drop(columns="filename").isna().all().all()
    assert truth["label"].notna().all() and set(truth["actor"]).isdisjoint(train["actor"])
    key = pd.read_csv(root / "test_key.csv")
    by_name = dict(zip(truth["filename"], truth["label"]))
    for f, original in zip(key["filename"], key["original_name"]):
        assert parse_clip_name(original).label.name == by_name[f]


def test_media_have_video_and_audio(tiny: S.GeneratedDataset) -> None:
    import av

    paths = sorted(tiny.train_dir.glob("*.mp4"))[:3] + sorted(tiny.test_dir.glob("*.mp4"))[:2]
    for path in paths:
        with av.open(str(path)) as c:
            assert c.streams.video and c.streams.audio, path
            v, a = c.streams.video[0], c.streams.audio[0]
            assert (v.codec_context.width, v.codec_context.height) == (192, 192)
            assert a.codec_context.sample_rate == S.SAMPLE_RATE
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        with av.open(str(path)) as c:
            samples = sum(f.samples for f in c.decode(audio=0))
        assert len(frames) == round(TINY["duration"] * TINY["fps"])
        assert abs(samples / S.SAMPLE_RATE - TINY["duration"]) < 0.15


def test_rerun_reuses_and_an_interrupted_run_is_finished(tiny: S.GeneratedDataset, tmp_path: Path) -> None:
    again = S.generate_dataset(tiny.root, **TINY, progress=False)
    assert again.reused
    # Copy the dataset, drop two clips and the completion mark: only those two are rendered again.
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny.root, copy)
    gone = sorted(copy.joinpath("train").glob("*.mp4"))[:2]
    kept = sorted(copy.joinpath("train").glob("*.mp4"))[5]
    mtime = kept.stat().st_mtime_ns
    for p in gone:
        p.unlink()
    state = json.loads((copy / "dataset.json").read_text())
    state["complete"] = False
    (copy / "dataset.json").write_text(json.dumps(state))
    finished = S.generate_dataset(copy, **TINY, progress=False)
    assert not finished.reused and all(p.exists() for p in gone)
    assert kept.stat().st_mtime_ns == mtime
    assert json.loads((copy / "dataset.json").read_text())["complete"]


def test_other_parameters_regenerate(tiny: S.GeneratedDataset, tmp_path: Path, monkeypatch) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny.root, copy)
    rendered: list[int] = []
    monkeypatch.setattr(S, "_render_all", lambda specs, **kw: rendered.append(len(specs)))
    other = S.generate_dataset(copy, **{**TINY, "seed": 4}, progress=False)
    assert not other.reused
    assert rendered == [54 * 6]  # every clip again: the old ones were removed
    assert not list(copy.joinpath("train").glob("*.mp4"))
    state = json.loads((copy / "dataset.json").read_text())
    assert state["parameters"]["seed"] == 4 and state["complete"]


def test_face_mesh_finds_the_face(tiny: S.GeneratedDataset) -> None:
    """MediaPipe Face Mesh (video mode, refined landmarks) detects the face in > 95% of frames."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    import av
    import mediapipe as mp

    paths = sorted(tiny.train_dir.glob("*.mp4"))[::27] + sorted(tiny.test_dir.glob("*.mp4"))[::27]
    found = total = 0
    for path in paths:
        with av.open(str(path)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, refine_landmarks=True) as mesh:
            for frame in frames:
                found += bool(mesh.process(frame).multi_face_landmarks)
                total += 1
    assert total >= 100
    assert found / total > 0.95, f"face found in {found} of {total} frames"


def test_shipped_face_is_the_astronaut_crop() -> None:
    skdata = pytest.importorskip("skimage.data")
    image, basis = S._face_assets()
    top, left, side = S._CROP
    np.testing.assert_array_equal(image, skdata.astronaut()[top : top + side, left : left + side])
    assert basis.shape == (len(S.FACE_PARAMS[: S._N_WARP]), side, side, 2)


def test_without_opencv_generate_says_how_to_install_it(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cv2" else real(name, *a))
    result = CliRunner().invoke(app, ["generate", str(tmp_path / "d"), "--actors", "6"])
    assert result.exit_code == 2, result.output
    assert "needs OpenCV (cv2)" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "train").exists()  # checked before anything is written

