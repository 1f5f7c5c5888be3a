"""The frames a video model sees: the centre square, or a fixed square around the face (``--face-crop``).

:func:`model_video_spec` is what a video model encoder asks the decoder for. With a face
crop it hands the decoder a :class:`FaceCrop`, a frame transform
(:class:`blemore.media.decoder.FrameTransform`) that the decoder runs where the clip is decoded (in
the decoding worker with ``--pool process``), so the face detector's work happens beside
the GPU, not in front of it. Each decoding thread or process keeps one detector: on the
2-core VM a 4 s clip at 448 px then costs 26-33 ms on one core, against 38-48 ms with a
detector built per clip (``benchmarks/bench_facecrop.py``), about half of what CLIP takes per
clip on an H100.

>>> model_video_spec(fps=30.0, image_size=224, face_crop=False)
VideoSpec(fps=30.0, short_side=224, crop='centre', transform=None)
>>> model_video_spec(fps=30.0, image_size=224, face_crop=True).transform   # doctest: +SKIP
FaceCrop(margin=1.6, probes=8, min_confidence=0.5)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from blemore.encoders.mediapipe_support import import_mediapipe, quiet_native_stderr
from blemore.media.decoder import VideoSpec, centre_square

__all__ = ["FaceCrop", "FaceCropper", "model_video_spec"]

_LOCAL = threading.local()  # per decoding thread: one cropper (one detector graph) per FaceCrop setting


def model_video_spec(*, fps: float | None, image_size: int, face_crop: bool) -> VideoSpec:
    """The frames a video model of input size ``image_size`` asks the decoder for.

    The centre square at the model's size; or, with ``face_crop``, frames decoded at twice
    that size and cut to the square around the face (:class:`FaceCrop`; the model's own
    preprocessing resizes the square). Raises :class:`~blemore.errors.BlemoreError` if
    ``face_crop`` is asked for without MediaPipe (checked here: the crop itself runs in the
    decoding workers).
    """
    if face_crop:
        import_mediapipe("--face-crop")
        return VideoSpec(fps=fps, short_side=2 * image_size, transform=FaceCrop())
    return VideoSpec(fps=fps, short_side=image_size, crop="centre")


@dataclass(frozen=True)
class FaceCrop:
    """A frame transform: the clip's frames cut to the square around the face.

    Picklable, hashable and compared by value (a :class:`~blemore.media.decoder.VideoSpec` holds it
    and is a dictionary key); the detector itself lives in the decoding thread
    (:class:`FaceCropper`, built on first use and kept). Parameters as :class:`FaceCropper`.
    """

    margin: float = 1.6
    probes: int = 8
    min_confidence: float = 0.5
    name: ClassVar[str] = "face"

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        croppers = getattr(_LOCAL, "croppers", None)
        if croppers is None:
            croppers = _LOCAL.croppers = {}
        cropper = croppers.get(self)
        if cropper is None:
            cropper = croppers[self] = FaceCropper(
                margin=self.margin, probes=self.probes, min_confidence=self.min_confidence
            )
        return cropper(frames)


class FaceCropper:
    """A fixed square crop around the face, found by MediaPipe's face detector.

    The detector runs on up to ``probes`` frames spread over the clip; the crop is the
    median face box, enlarged by ``margin`` and made square, kept for the whole clip
    (no jitter between frames). Without a face anywhere the clip is centre-cropped.
    The detector is built once and reused for every clip (it keeps no state between
    frames); a cropper is for one thread at a time.
    """

    def __init__(self, *, margin: float = 1.6, probes: int = 8, min_confidence: float = 0.5):
        self._mp = import_mediapipe("--face-crop")
        self.margin = margin
        self.probes = probes
        self.min_confidence = min_confidence
        self._detector = None

    def _detect(self, frame: np.ndarray):
        if self._detector is None:  # MediaPipe logs while it builds and first runs its graph: silence that
            with quiet_native_stderr():
                self._detector = self._mp.solutions.face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=self.min_confidence
                )
                return self._detector.process(np.ascontiguousarray(frame))
        return self._detector.process(np.ascontiguousarray(frame))

    def box(self, frames: np.ndarray) -> tuple[int, int, int] | None:
        """(top, left, side) of the crop in pixels, or None without a face."""
        t, h, w = frames.shape[:3]
        picks = np.unique(np.linspace(0, t - 1, min(self.probes, t)).round().astype(int))
        boxes = []
        for i in picks:
            result = self._detect(frames[i])
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

    def close(self) -> None:
        """Release the detector's graph."""
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """``frames`` (T, H, W, 3) cut to the face square, or to the centre square without a face."""
        box = self.box(frames) if len(frames) else None
        if box is None:
            return np.ascontiguousarray(centre_square(frames))
        top, left, side = box
        return np.ascontiguousarray(frames[:, top : top + side, left : left + side])
