"""A fixed square crop around the face, for the video models (``--face-crop``).

Runs where the clip is decoded (in the decoding worker with ``--pool process``), so the
face detector's work happens beside the GPU, not in front of it. Each decoding thread or
process keeps one detector: on the 2-core VM a 4 s clip at 448 px then costs 26-33 ms on
one core, against 38-48 ms with a detector built per clip (``benchmarks/bench_facecrop.py``),
about half of what CLIP takes per clip on an H100. :func:`blemore.media.decode_clip` calls :func:`crop_to_face` for a
``VideoSpec(crop="face")``.
"""

from __future__ import annotations

import os
import threading

import numpy as np

__all__ = ["FaceCropper", "crop_to_face", "import_mediapipe"]

_LOCAL = threading.local()  # one cropper (one detector graph) per decoding thread


def import_mediapipe(what: str):
    """``mediapipe``, or a :class:`~blemore.errors.BlemoreError` saying how to install it."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import mediapipe
    except ImportError:
        from blemore.errors import BlemoreError

        raise BlemoreError(
            f"{what} needs MediaPipe: pip install 'blemore[face]' (mediapipe==0.10.21, the last wheel that "
            f"ships the face models; it needs numpy<2 and Python <= 3.12)"
        ) from None
    return mediapipe


def crop_to_face(frames: np.ndarray) -> np.ndarray:
    """``frames`` cut to the face square with this thread's :class:`FaceCropper`."""
    cropper = getattr(_LOCAL, "cropper", None)
    if cropper is None:
        cropper = _LOCAL.cropper = FaceCropper()
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

    def box(self, frames: np.ndarray) -> tuple[int, int, int] | None:
        """(top, left, side) of the crop in pixels, or None without a face."""
        from blemore.encoders.facemesh import _quiet_native_stderr

        t, h, w = frames.shape[:3]
        picks = np.unique(np.linspace(0, t - 1, min(self.probes, t)).round().astype(int))
        if self._detector is None:  # MediaPipe logs while it builds and first runs its graph: silence that
            with _quiet_native_stderr():
                self._detector = self._mp.solutions.face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=self.min_confidence
                )
                first = self._detector.process(np.ascontiguousarray(frames[picks[0]]))
        else:
            first = self._detector.process(np.ascontiguousarray(frames[picks[0]]))
        boxes = []
        for k, i in enumerate(picks):
            result = first if k == 0 else self._detector.process(np.ascontiguousarray(frames[i]))
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
        from blemore.media.decoder import centre_square

        box = self.box(frames) if len(frames) else None
        if box is None:
            return np.ascontiguousarray(centre_square(frames))
        top, left, side = box
        return np.ascontiguousarray(frames[:, top : top + side, left : left + side])
