"""Face geometry from MediaPipe Face Mesh (478 landmarks; offline, models ship in the wheel).

Per analysed frame, 214 values (:data:`FEATURE_NAMES`):

1. **pose-normalised landmark coordinates** (202 = 101 landmarks x (x, y)): lips (40),
   eyes (2 x 16), eyebrows (2 x 10), iris centres (2), nose (4), chin (1), cheeks (2).
   Landmarks are put in a face-anchored frame that removes translation, scale and
   rotation: origin at the nose bridge (168); x from the right to the left eye (mean of
   each eye's corners); y up along the nose (2 -> 168), made orthogonal to x; z = x cross y;
   unit = inter-ocular distance (between the iris centres). Only rigid upper-face points
   define the frame, so expressions (mouth, brows) stay in the coordinates. The depth
   coordinate of a monocular mesh is noisy and is left out.
2. **interpretable measures** (9, in inter-ocular distances): ``mouth_open`` (inner lips
   13-14), ``mouth_width`` (61-291), ``mouth_corner_right/left`` (corner height above the
   inner-lip centre; positive = raised), ``brow_right/left`` (brow height above the eye
   corners), ``brow_gap`` (55-285, brows drawn together = smaller), ``eye_open_right/left``
   (lids 159-145 and 386-374). "Left"/"right" are the subject's.
3. **head pose** (3, degrees): ``yaw``, ``pitch``, ``roll`` of the face frame.

Frames where no face is found are NaN rows (never zeros); the index records the
fraction of frames with a face (``face_found``). Frames are analysed at 15 fps with the
shorter side scaled to 240 px by default, which runs several times faster than real time
on one CPU core (``benchmarks/bench_extract.py`` measures it).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from blemore.encoders.base import BuildRequest, Encoder
from blemore.encoders.mediapipe_support import import_mediapipe, quiet_native_stderr
from blemore.errors import BlemoreError
from blemore.media.decoder import VideoSpec

__all__ = ["FaceMeshEncoder", "FEATURE_NAMES", "SUBSET", "build", "geometry_features"]

_LIPS = [0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191,
         267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415]
_RIGHT_EYE = [7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246]
_LEFT_EYE = [249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466]
_RIGHT_BROW = [46, 52, 53, 55, 63, 65, 66, 70, 105, 107]
_LEFT_BROW = [276, 282, 283, 285, 293, 295, 296, 300, 334, 336]
_IRIS = [468, 473]
_NOSE = [1, 2, 98, 327]
_OTHER = [152, 205, 425]
#: The 101 landmarks whose (x, y) are kept, in feature order.
SUBSET: tuple[int, ...] = tuple(_LIPS + _RIGHT_EYE + _LEFT_EYE + _RIGHT_BROW + _LEFT_BROW + _IRIS + _NOSE + _OTHER)
MEASURES = (
    "mouth_open", "mouth_width", "mouth_corner_right", "mouth_corner_left",
    "brow_right", "brow_left", "brow_gap", "eye_open_right", "eye_open_left",
)
POSE = ("yaw", "pitch", "roll")
FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"lm{i}_{a}" for i in SUBSET for a in "xy") + MEASURES + POSE
)
N_LANDMARKS = 478


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def geometry_features(landmarks: np.ndarray) -> np.ndarray:
    """Features (T, 214) from landmarks (T, 478, 3) in a right-handed frame with y up.

    Input rows that are NaN (no face) give NaN rows. Pure numpy; invariant to
    translation, uniform scale and rotation of the input (tested).
    """
    q = np.asarray(landmarks, dtype=np.float64)
    if q.ndim != 3 or q.shape[1:] != (N_LANDMARKS, 3):
        raise BlemoreError(f"face landmarks must be (T, {N_LANDMARKS}, 3), got {q.shape}")
    right_eye = q[:, [33, 133]].mean(axis=1)
    left_eye = q[:, [263, 362]].mean(axis=1)
    ex = _unit(left_eye - right_eye)
    up = q[:, 168] - q[:, 2]
    ey = _unit(up - np.sum(up * ex, axis=-1, keepdims=True) * ex)
    ez = np.cross(ex, ey)
    rot = np.stack([ex, ey, ez], axis=1)  # (T, 3, 3): rows are the face axes
    iod = np.linalg.norm(q[:, 468] - q[:, 473], axis=-1)
    a = np.einsum("tij,tnj->tni", rot, q - q[:, 168:169]) / iod[:, None, None]

    def dist(i: int, j: int) -> np.ndarray:
        return np.linalg.norm(a[:, i, :2] - a[:, j, :2], axis=-1)

    mouth_centre = (a[:, 13, 1] + a[:, 14, 1]) / 2
    measures = np.stack(
        [
            dist(13, 14),
            dist(61, 291),
            a[:, 61, 1] - mouth_centre,
            a[:, 291, 1] - mouth_centre,
            a[:, [70, 63, 105, 66, 107], 1].mean(axis=1) - a[:, [33, 133], 1].mean(axis=1),
            a[:, [300, 293, 334, 296, 336], 1].mean(axis=1) - a[:, [263, 362], 1].mean(axis=1),
            dist(55, 285),
            dist(159, 145),
            dist(386, 374),
        ],
        axis=1,
    )
    yaw = np.degrees(np.arctan2(ez[:, 0], ez[:, 2]))
    pitch = np.degrees(np.arctan2(ez[:, 1], np.hypot(ez[:, 0], ez[:, 2])))
    roll = np.degrees(np.arctan2(ex[:, 1], ex[:, 0]))
    coords = a[:, list(SUBSET), :2].reshape(len(q), -1)
    return np.concatenate([coords, measures, np.stack([yaw, pitch, roll], axis=1)], axis=1).astype(np.float32)


class FaceMeshEncoder(Encoder):
    """MediaPipe Face Mesh -> pose-normalised face geometry (see the module docstring).

    ``fps`` / ``short_side``: the rate and size frames are analysed at.
    """

    modality = "video"
    dim = len(FEATURE_NAMES)
    marks_faces = True

    def __init__(self, *, name: str = "facemesh", fps: float = 15.0, short_side: int = 240,
                 min_detection_confidence: float = 0.5, batch_size: int = 1):
        mp = import_mediapipe("the facemesh encoder")
        self._mp = mp
        self.name = name
        self.video = VideoSpec(fps=fps, short_side=short_side)
        self.min_detection_confidence = min_detection_confidence
        self.batch_size = batch_size
        self.version = mp.__version__

    def output_fps(self, input_rate: float) -> float:
        return float(input_rate)

    def landmarks(self, frames: np.ndarray) -> np.ndarray:
        """(T, 478, 3) landmarks, right-handed, y up, in pixels (z scaled like x); NaN without a face."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise BlemoreError(f"face mesh needs uint8 RGB frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
        t, h, w = frames.shape[:3]
        out = np.full((t, N_LANDMARKS, 3), np.nan)
        with quiet_native_stderr(), self._mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False, refine_landmarks=True, max_num_faces=1,
            min_detection_confidence=self.min_detection_confidence,
        ) as mesh:
            for i in range(t):
                result = mesh.process(np.ascontiguousarray(frames[i]))
                if not result.multi_face_landmarks:
                    continue
                pts = result.multi_face_landmarks[0].landmark
                xyz = np.array([(p.x, p.y, p.z) for p in pts], dtype=np.float64)
                if xyz.shape[0] != N_LANDMARKS:
                    continue
                out[i, :, 0] = xyz[:, 0] * w
                out[i, :, 1] = -xyz[:, 1] * h
                out[i, :, 2] = -xyz[:, 2] * w
        return out

    def encode(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [geometry_features(self.landmarks(frames)) for frames in inputs]

    def settings(self) -> dict:
        return {
            **super().settings(),
            "mediapipe": self.version,
            "refine_landmarks": True,
            "min_detection_confidence": self.min_detection_confidence,
            "columns": list(FEATURE_NAMES),
        }


def build(request: BuildRequest) -> FaceMeshEncoder:
    """The registry's factory: ``facemesh`` (15 fps, 240 px)."""
    return FaceMeshEncoder(name=request.name, batch_size=request.batch_size or 1)
