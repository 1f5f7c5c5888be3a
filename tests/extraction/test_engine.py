"""The steps every extraction runner shares (blemore.extraction.engine)."""

from __future__ import annotations

import errno
import shutil
from typing import get_args

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blemore.encoders.base import Encoder
from blemore.errors import BlemoreError
from blemore.extraction.engine import (
    Decoded,
    Pool,
    Precision,
    Sink,
    WriterThread,
    build_encoders,
    check_choice,
    close_stores,
    decode,
    encoder_settings,
    finished_row,
    open_stores,
    plan,
    run_batch,
)
from blemore.features.store import FeatureStore
from blemore.features.summary import ExtractionSummary
from blemore.media.decoder import read_video

from tests.support import avclips
from tests.support.echo_encoder import FramesEcho

CLIPS = [f"A{100 + k}_hap_int1_ver1" for k in range(6)]
ENCODERS = ["opensmile", "facemesh", "clip"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    for k in range(4):
        avclips.make_clip(root / f"A10{k}_ang_int1_ver1.mov", seconds=0.6 + 0.1 * k, size=(160, 96),
                          freq=200 + 50 * k)
    avclips.make_broken(root / "test_0001.mov")
    return root


class HalfFaces(FramesEcho):
    """Marks faces: every third frame has none (a NaN row)."""

    name = "halffaces"
    marks_faces = True

    def encode(self, inputs):
        out = super().encode(inputs)
        for x in out:
            x[::3] = np.nan
        return out


class Loudness(Encoder):
    """An audio 'encoder': mean absolute amplitude per 10 ms."""

    name = "loudness"
    modality = "audio"
    dim = 1
    batch_size = 3

    def output_fps(self, input_rate: float) -> float:
        return 100.0

    def encode(self, inputs):
        return [np.abs(x[: len(x) // 160 * 160]).reshape(-1, 160).mean(1, keepdims=True).astype(np.float32)
                for x in inputs]


# --------------------------------------------------------------------------- the plan


@settings(max_examples=200, deadline=None)
@given(order=st.permutations(CLIPS), n=st.integers(0, len(CLIPS)),
       done=st.fixed_dictionaries({e: st.sets(st.sampled_from(CLIPS)) for e in ENCODERS}))
def test_plan_leaves_out_exactly_the_stored_pairs(order, n, done):
    clips = order[:n]
    work = plan([(c, f"/clips/{c}.mov") for c in clips], done)
    # a plain per-pair statement of the same thing
    needed = [(c, e) for c in clips for e in done if c not in done[e]]  # encoders in the order given
    assert [(j.clip, e) for j in work.jobs for e in j.encoders] == needed
    assert work.skipped == len(clips) * len(ENCODERS) - len(needed)
    assert all(j.encoders and j.path == f"/clips/{j.clip}.mov" for j in work.jobs)
    assert len({j.clip for j in work.jobs}) == len(work.jobs)


def test_fixed_words_are_literals_that_the_library_checks():
    from blemore.encoders import hf

    assert get_args(Precision) == hf.PRECISIONS
    assert get_args(Pool) == ("thread", "process")
    assert check_choice("--pool", "process", Pool) == "process"
    with pytest.raises(BlemoreError, match=r"^--pool 'fork': expected 'thread' or 'process'$"):
        check_choice("--pool", "fork", Pool)


@pytest.mark.parametrize(
    "encoders, options, message",
    [
        ([], {}, "no encoders given"),
        (["opensmile", "nosuch"], {}, "unknown encoder 'nosuch'"),
        ([FramesEcho(), FramesEcho()], {}, "encoder 'echo' is named twice"),
        (["opensmile"], {"precision": "fp16"}, "--precision 'fp16'"),
    ],
)
def test_build_encoders_refuses_bad_specs_before_building_any(encoders, options, message):
    with pytest.raises(BlemoreError, match=message):
        build_encoders(encoders, **options)


def test_open_stores_refuses_a_file_as_the_features_root(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(BlemoreError, match="exists and is not a folder"):
        open_stores(tmp_path / "f", {"echo": encoder_settings(FramesEcho())})


# --------------------------------------------------------------------------- decoding and encoding


def test_decode_gives_the_reason_instead_of_raising(clips):
    got = decode(str(clips / "test_0001.mov"), [FramesEcho()])
    assert isinstance(got, BlemoreError) and "test_0001.mov" in str(got)
    ok = decode(str(clips / "A100_ang_int1_ver1.mov"), [FramesEcho(), Loudness()])
    assert ok.audio is not None and set(ok.video) == {FramesEcho.video}


def _decoded(clips, encoders):
    return [Decoded(p.stem, tuple(e.name for e in encoders), decode(str(p), encoders))
            for p in sorted(clips.iterdir())]


def test_run_batch_stores_each_clip_for_the_encoders_waiting_for_it(clips, tmp_path):
    encoders = [FramesEcho(), Loudness()]
    batch = _decoded(clips, encoders)
    batch[0] = batch[0]._replace(encoders=("loudness",))  # echo already has the first clip
    stores = open_stores(tmp_path, {e.name: encoder_settings(e) for e in encoders})
    summary = ExtractionSummary(out=tmp_path, encoders=[e.name for e in encoders])
    run_batch(batch, encoders, Sink(stores, summary), summary)
    close_stores(stores)
    assert stores["echo"].done() == {p.stem for p in sorted(clips.iterdir())[1:4]}
    assert stores["loudness"].done() == {p.stem for p in sorted(clips.iterdir())[:4]}
    assert {(f.encoder, f.clip) for f in summary.failures} == {("echo", "test_0001"), ("loudness", "test_0001")}
    assert (summary.done, summary.failed) == (7, 2) and summary.media_seconds > 0


class SlowFailing(FramesEcho):
    """Takes 50 ms per call and fails on any batch holding a clip of ``bad_len`` frames."""

    name = "slowfail"
    batch_size = 5
    bad_len = -1

    def encode(self, inputs):
        import time

        time.sleep(0.05)
        if any(len(x) == self.bad_len for x in inputs):
            raise RuntimeError("cannot encode this clip")
        return super().encode(inputs)


def test_a_failing_batch_is_retried_clip_by_clip_and_its_time_counted_once(clips, tmp_path):
    enc = SlowFailing()
    enc.bad_len = len(read_video(clips / "A102_ang_int1_ver1.mov", fps=10.0, short_side=48, crop=None).frames)
    batch = _decoded(clips, [enc])[:4]
    stores = open_stores(tmp_path, {enc.name: encoder_settings(enc)})
    summary = ExtractionSummary(out=tmp_path, encoders=[enc.name])
    run_batch(batch, [enc], Sink(stores, summary), summary)
    failures = [(f.clip, f.reason) for f in summary.failures]
    assert failures == [("A102_ang_int1_ver1", "RuntimeError: cannot encode this clip")]
    assert summary.done == 3
    # one batch call + four single-clip calls of 50 ms each, each counted once
    assert 5 * 0.05 <= summary.encode_seconds["slowfail"] < 9 * 0.05


@pytest.mark.parametrize("encoder", [FramesEcho(), HalfFaces(), Loudness()], ids=lambda e: e.name)
def test_a_file_taken_back_gets_the_row_an_uninterrupted_run_writes(clips, tmp_path, encoder):
    written = tmp_path / "written"
    stores = open_stores(written, {encoder.name: encoder_settings(encoder)})
    summary = ExtractionSummary(out=written, encoders=[encoder.name])
    run_batch(_decoded(clips, [encoder]), [encoder], Sink(stores, summary), summary)
    close_stores(stores)
    # the same files, without their index (a run killed before it wrote the index)
    shutil.copytree(written / encoder.name, tmp_path / "taken" / encoder.name)
    (tmp_path / "taken" / encoder.name / "index.csv").unlink()
    store = FeatureStore(tmp_path / "taken" / encoder.name, settings=encoder_settings(encoder))
    assert store.adopted == stores[encoder.name].done() and len(store.adopted) == 4
    for clip in sorted(store.adopted):
        store.record_done(clip, **finished_row(encoder, store.path(clip)))
    store.fail("test_0001", summary.failures[0].reason)
    store.close()
    assert store.adopted == set()
    index = (written / encoder.name / "index.csv").read_bytes()
    assert (tmp_path / "taken" / encoder.name / "index.csv").read_bytes() == index


def test_finished_row_of_an_unreadable_file_is_none(tmp_path):
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY half a header")
    assert finished_row(FramesEcho(), tmp_path / "x.npy") is None


# --------------------------------------------------------------------------- the writer


class _SlowStore:
    def __init__(self, delay=0.0, fail_on=None):
        self.written: list[str] = []
        self.failed: list[str] = []
        self.delay = delay
        self.fail_on = fail_on

    def write(self, clip, features, **kwargs):
        import time

        time.sleep(self.delay)
        if clip == self.fail_on:
            raise RuntimeError(f"disk gone while writing {clip}")
        self.written.append(clip)

    def fail(self, clip, error):
        self.failed.append(clip)


def test_writer_thread_keeps_order_counts_and_hands_its_error_to_the_caller(tmp_path):
    enc = FramesEcho()
    store = _SlowStore(delay=0.002, fail_on="c5")
    summary = ExtractionSummary(out=tmp_path, encoders=["echo"])
    sink = WriterThread({"echo": store}, summary, depth=1)
    features = np.zeros((3, 3), np.float32)
    with pytest.raises(RuntimeError, match="disk gone while writing c5"):
        for k in range(20):
            if k == 2:
                sink.fail(enc, "bad", "no video stream")
            sink.write(enc, f"c{k}", features, 10.0)
        sink.close()
    sink.close(raise_error=False)
    assert store.written == [f"c{k}" for k in range(5)]  # in order; nothing after the error
    assert store.failed == ["bad"]
    assert summary.done == 5 and summary.failed == 1
    assert summary.wait_write_seconds > 0  # depth 1: the caller waited for the slow store


class _Closing:
    def __init__(self, error=None):
        self.error = error
        self.closed = False

    def close(self):
        self.closed = True
        if self.error:
            raise self.error


def test_close_stores_closes_every_store_and_raises_the_first_error_unless_failing():
    full = OSError(errno.ENOSPC, "No space left on device", "f/a/index.csv")
    stores = {"a": _Closing(full), "b": _Closing(OSError(errno.ENOSPC, "full", "f/b/index.csv")), "c": _Closing()}
    with pytest.raises(OSError) as info:
        close_stores(stores)
    assert info.value is full and all(s.closed for s in stores.values())
    again = {"a": _Closing(full), "c": _Closing()}
    close_stores(again, failing=True)  # the error that stopped the run is the one reported
    assert all(s.closed for s in again.values())
