"""A generated dataset in BLEMORE form: faces and voices that carry emotions.

``generate_dataset(out, actors=12, seed=0)`` writes real media files (``.mp4``:
H.264 video + AAC audio) named exactly like BLEMORE clips, the official metadata
CSVs and a truth file for the anonymised held-out partition::

    OUT/train/A123_ang_int1_ver1.mp4 ...    training clips (5 actor-disjoint folds)
    OUT/train_metadata.csv                  official columns, with labels
    OUT/test/test_0001.mp4 ...              held-out clips, anonymised
    OUT/test_metadata.csv                   official columns, filename only
    OUT/test_truth.csv                      the held-out labels (for ``blemore score``)
    OUT/test_key.csv                        test_0001 -> descriptive name
    OUT/dataset.json                        parameters; ``complete`` is set last

How emotions are carried
------------------------
Every emotion is a *prototype* of facial movement (:data:`FACE_PARAMS`: brows,
eyelids, mouth corners, upper lip, jaw, lip stretch and head pitch / yaw /
approach / jitter) and of vocal expression (:data:`VOICE_PARAMS`: pitch level
and range, loudness, spectral tilt, breathiness, roughness, vocalisation rate,
amplitude modulation such as laughter pulses or sobs, vowel formants). Neutral
is the zero vector. A clip's expression over time is

``p(t) = gain_actor * (w1 * env1(t) * proto1' + w2 * env2(t) * proto2') + style_actor + noise``

where ``w`` are the saliences (singles: ``w1`` from the intensity, 0.4 ... 1.0),
``env`` are onset envelopes (in a blend the dominant emotion starts first and
the other enters later; 50/50 in random order), ``proto'`` is the prototype
perturbed per clip, ``style_actor`` is the actor's own neutral face / voice
offset and ``gain_actor`` their expressivity. The face is scikit-image's
astronaut photo cropped to the face and warped by smooth displacement fields
around landmarks (MediaPipe Face Mesh detects it), moved by head motion and
coloured per actor; the voice is a glottal pulse train through formant filters
shaped into non-verbal vocalisation bursts (the mouth opens with them). Face
and voice get independent noise, and each shows some emotions more clearly than
the other (disgust and happiness in the face; anger, fear and sadness in the
voice), so each modality alone is informative and their fusion more so.

With the offline encoders and the baseline heads, presence accuracy is far above
the trivial baselines (about 0.07) but far from perfect (about 0.3-0.45 with 12
actors); ``noise`` scales every noise source to make the data harder or easier.

>>> from blemore.data.synthetic import plan_dataset
>>> plan = plan_dataset(actors=6, seed=0)
>>> len(plan), plan["partition"].value_counts().to_dict()
(324, {'train': 270, 'test': 54})
"""

from __future__ import annotations

import json
import math
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from functools import lru_cache
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from blemore.data.metadata import OFFICIAL_COLUMNS
from blemore.errors import BlemoreError
from blemore.io import atomic_write, remove_temporaries, write_csv, write_json
from blemore.labels import (
    BLEND_EMOTIONS,
    EMOTIONS,
    LABEL_INDEX,
    SALIENCE_CONFIGS,
    VALID_LABELS,
)

__all__ = [
    "FACE_PARAMS",
    "VOICE_PARAMS",
    "FACE_PROTOTYPES",
    "VOICE_PROTOTYPES",
    "OFFICIAL_COLUMNS",
    "DatasetParameters",
    "GeneratedDataset",
    "plan_dataset",
    "clip_expression",
    "render_frames",
    "render_audio",
    "render_clip",
    "official_metadata",
    "write_media",
    "generate_dataset",
    "N_FOLDS",
    "MIN_ACTORS",
]

FORMAT_VERSION = 3
N_FOLDS = 5
#: One held-out actor and one per training fold.
MIN_ACTORS = N_FOLDS + 1
#: Share of actors held out (the real set: 11 of 58).
TEST_SHARE = 0.2
SAMPLE_RATE = 16_000
EXTENSION = ".mp4"

# --------------------------------------------------------------------------- prototypes

FACE_PARAMS: tuple[str, ...] = (
    "brow_raise",
    "brow_lower",
    "lid_open",
    "lid_tight",
    "corner_up",
    "corner_down",
    "lip_raise",
    "jaw_open",
    "lip_stretch",
    "head_pitch",
    "head_yaw",
    "head_forward",
    "head_jitter",
)
_N_WARP = 9  # the first nine face parameters warp the face; the rest move the head

VOICE_PARAMS: tuple[str, ...] = (
    "f0_level",  # semitones above the actor's base pitch
    "f0_range",  # semitones of pitch movement within a burst
    "loudness",  # dB
    "tilt",  # + brighter (flatter spectrum), - darker
    "breath",  # aspiration noise share
    "rough",  # jitter / creak
    "rate",  # extra vocalisation bursts per second
    "am_depth",  # pulsing within a burst (laughter, sobs, tremor)
    "f1",  # first formant shift, Hz
    "f2",  # second formant shift, Hz
)


def _table(rows: dict[str, dict[str, float]], names: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(EMOTIONS), len(names)))
    for e, values in rows.items():
        for k, v in values.items():
            out[EMOTIONS.index(e), names.index(k)] = v
    out.setflags(write=False)
    return out


#: (6, 13) facial prototypes in :data:`EMOTIONS` order (neutral = 0).
FACE_PROTOTYPES = _table(
    {
        "ang": dict(brow_lower=1.0, lid_open=0.5, lid_tight=0.3, lip_stretch=0.3, jaw_open=0.3,
                    head_forward=0.8, head_pitch=-0.3, head_jitter=0.4),
        "disg": dict(brow_lower=0.6, lid_tight=0.8, lip_raise=1.0, corner_down=0.6, head_yaw=0.8,
                     head_pitch=0.3, head_forward=-0.4),
        "fea": dict(brow_raise=1.0, lid_open=1.0, lip_stretch=1.0, jaw_open=0.5, head_forward=-0.6,
                    head_pitch=0.2, head_jitter=0.7),
        "hap": dict(corner_up=1.0, lid_tight=0.7, jaw_open=0.6, head_pitch=0.5, head_jitter=0.6),
        "sad": dict(brow_raise=0.5, brow_lower=0.4, lid_open=-0.5, corner_down=1.0, head_pitch=-0.8,
                    head_jitter=0.1),
    },
    FACE_PARAMS,
)

#: (6, 10) vocal prototypes in :data:`EMOTIONS` order (neutral = 0).
VOICE_PROTOTYPES = _table(
    {
        "ang": dict(f0_level=3, f0_range=2, loudness=9, tilt=1.0, rough=0.5, rate=1.0, am_depth=0.1, f1=150),
        "disg": dict(f0_level=-3, f0_range=1, loudness=2, tilt=-0.4, breath=0.4, rough=0.8, rate=-0.3,
                     f1=-80, f2=-350),
        "fea": dict(f0_level=7, f0_range=4, loudness=3, tilt=0.3, breath=0.8, rough=0.3, rate=1.5,
                    am_depth=0.4, f1=-60, f2=450),
        "hap": dict(f0_level=5, f0_range=5, loudness=5, tilt=0.5, breath=0.4, rate=2.0, am_depth=0.9,
                    f1=250, f2=100),
        "sad": dict(f0_level=-2, f0_range=3, loudness=-5, tilt=-0.8, breath=0.6, rough=0.3, rate=-0.5,
                    am_depth=0.3, f1=-100, f2=-200),
    },
    VOICE_PARAMS,
)
# How clearly each modality shows each emotion (ang, disg, fea, hap, sad, neu): disgust and
# happiness show most in the face, anger, fear and sadness most in the voice, so that each
# modality confuses some emotions that the other tells apart.
_FACE_CLARITY = np.array([0.7, 1.1, 0.8, 1.1, 0.7, 1.0])
_VOICE_CLARITY = np.array([1.1, 0.6, 1.1, 0.8, 1.1, 1.0])
FACE_PROTOTYPES = FACE_PROTOTYPES * _FACE_CLARITY[:, None]
VOICE_PROTOTYPES = VOICE_PROTOTYPES * _VOICE_CLARITY[:, None]
FACE_PROTOTYPES.setflags(write=False)
VOICE_PROTOTYPES.setflags(write=False)

#: Pulse rate (Hz) of each emotion's amplitude modulation: laughter, tremor, sobs.
_AM_RATE = np.array([3.0, 3.0, 8.0, 5.0, 2.5, 4.0])
# Scale of each parameter's noise (per clip and per frame) relative to its typical size.
_FACE_SCALE = np.abs(FACE_PROTOTYPES).max(axis=0)
_VOICE_SCALE = np.abs(VOICE_PROTOTYPES).max(axis=0)

# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class DatasetParameters:
    """What a generated dataset is made from; equal parameters give the same data.

    ``noise`` scales every noise source (1.0 = the default difficulty).
    """

    actors: int = 12
    seed: int = 0
    duration: float = 2.0
    fps: int = 10
    size: int = 256
    noise: float = 1.0
    format_version: int = FORMAT_VERSION

    def check(self) -> "DatasetParameters":
        if self.actors < MIN_ACTORS:
            raise BlemoreError(
                f"--actors {self.actors}: need at least {MIN_ACTORS} actors "
                f"(one held out and one for each of the {N_FOLDS} training folds)"
            )
        if self.actors > 899:
            raise BlemoreError(f"--actors {self.actors}: at most 899 actors fit BLEMORE's actor ids A101-A999")
        if not 0.5 <= self.duration <= 30:
            raise BlemoreError(f"--duration {self.duration}: expected 0.5 to 30 seconds")
        if not 5 <= self.fps <= 60:
            raise BlemoreError(f"--fps {self.fps}: expected 5 to 60 frames per second")
        if not 64 <= self.size <= 1024 or self.size % 2:
            raise BlemoreError(f"--size {self.size}: expected an even frame size from 64 to 1024 pixels")
        if not 0 <= self.noise <= 10:
            raise BlemoreError(f"noise {self.noise}: expected 0 to 10")
        return self


@dataclass(frozen=True)
class ActorStyle:
    """An actor's own face and voice: neutral offsets, expressivity, look."""

    actor: str
    face_offset: np.ndarray  # (13,)
    voice_offset: np.ndarray  # (10,)
    face_gain: float
    voice_gain: float
    f0_base: float  # Hz
    formant_scale: float
    affine: tuple[float, float, float, float, float]  # scale, aspect, rotation (deg), dx, dy (fraction)
    colour: tuple[float, float, float]  # channel gains
    brightness: float


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render one clip (picklable, for worker processes)."""

    clip: str  # descriptive name
    path: str  # output file
    label_index: int
    intensity: int | None
    seed: int
    actor: ActorStyle
    params: DatasetParameters


@dataclass(frozen=True)
class GeneratedDataset:
    """Where a generated dataset lies."""

    root: Path
    parameters: DatasetParameters
    reused: bool
    seconds: float

    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    @property
    def test_dir(self) -> Path:
        return self.root / "test"

    @property
    def train_metadata(self) -> Path:
        return self.root / "train_metadata.csv"

    @property
    def test_metadata(self) -> Path:
        return self.root / "test_metadata.csv"

    @property
    def test_truth(self) -> Path:
        return self.root / "test_truth.csv"


# --------------------------------------------------------------------------- the plan


def _actor_ids(n: int, rng: np.random.Generator) -> list[str]:
    numbers = rng.choice(np.arange(101, 1000), size=n, replace=False)
    return [f"A{k}" for k in sorted(numbers.tolist())]


def _actor_clips(actor: str) -> list[tuple[str, int, int | None]]:
    """(clip name, label index, intensity) of the 54 clips one actor records."""
    out: list[tuple[str, int, int | None]] = []
    for e in BLEND_EMOTIONS:
        for k in range(1, 5):
            out.append((f"{actor}_{e}_int{k}_ver1", LABEL_INDEX[e], k))
    for k in range(1, 5):
        out.append((f"{actor}_neu_sit{k}_ver1", LABEL_INDEX["neu"], None))
    for e1, e2 in combinations(BLEND_EMOTIONS, 2):
        for s1, s2 in SALIENCE_CONFIGS:
            out.append((f"{actor}_mix_{e1}_{e2}_{s1}_{s2}_ver1", LABEL_INDEX[f"{e1}_{e2}_{s1}_{s2}"], None))
    return out


def plan_dataset(*, actors: int = 12, seed: int = 0) -> "Any":
    """The clips of a generated dataset, as a pandas DataFrame (no media rendered).

    Columns: ``clip`` (descriptive name), ``filename`` (the published name:
    ``clip`` for training, ``test_0001`` ... for the held-out partition),
    ``actor``, ``partition`` (train / test), ``fold`` (0-4, <NA> for test),
    ``label`` (canonical name), ``label_index``, ``intensity``. Like BLEMORE,
    about 20% of the actors are held out and the others are split into
    5 actor-disjoint folds of near-equal size; every actor records 54 clips
    (5 emotions x 4 intensities, 4 neutral situations, 10 pairs x 3 saliences).
    """
    import pandas as pd

    DatasetParameters(actors=actors, seed=seed).check()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    ids = _actor_ids(actors, rng)
    n_test = max(1, int(round(TEST_SHARE * actors)))
    if actors - n_test < N_FOLDS:
        n_test = actors - N_FOLDS
    order = rng.permutation(actors)
    test_actors = {ids[i] for i in order[:n_test]}
    train_actors = [ids[i] for i in sorted(order[n_test:])]
    fold_of = {a: i % N_FOLDS for i, a in enumerate(rng.permutation(train_actors).tolist())}

    rows = []
    for actor in ids:
        for clip, label_index, intensity in _actor_clips(actor):
            test = actor in test_actors
            rows.append(
                dict(
                    clip=clip,
                    filename=clip,
                    actor=actor,
                    partition="test" if test else "train",
                    fold=pd.NA if test else fold_of[actor],
                    label=VALID_LABELS[label_index].name,
                    label_index=label_index,
                    intensity=intensity,
                )
            )
    plan = pd.DataFrame(rows)
    plan["fold"] = plan["fold"].astype("Int64")
    plan["intensity"] = plan["intensity"].astype("Int64")
    test_rows = np.flatnonzero(plan["partition"].to_numpy() == "test")
    shuffled = rng.permutation(test_rows)
    width = max(4, len(str(len(test_rows))))
    for k, row in enumerate(shuffled, start=1):
        plan.loc[row, "filename"] = f"test_{k:0{width}d}"
    return plan


def official_metadata(plan: "Any", *, labels: bool = True, actors: bool = True) -> "Any":
    """The plan's rows in the official metadata columns (see :data:`OFFICIAL_COLUMNS`)."""
    import pandas as pd

    out = []
    for row in plan.itertuples(index=False):
        label = VALID_LABELS[row.label_index]
        rec: dict[str, Any] = dict.fromkeys(OFFICIAL_COLUMNS, "")
        rec["filename"] = row.filename
        if actors:
            rec["video_id"] = row.actor
        if not pd.isna(row.fold):
            rec["fold"] = int(row.fold)
        if labels:
            rec["mix"] = int(label.is_blend)
            (e1, s1), *rest = label.parts
            rec["emotion_1"], rec["emotion_1_salience"] = e1, s1
            if rest:
                rec["emotion_2"], rec["emotion_2_salience"] = rest[0]
        out.append(rec)
    return pd.DataFrame(out, columns=list(OFFICIAL_COLUMNS))


def _actor_styles(params: DatasetParameters, actors: Sequence[str]) -> dict[str, ActorStyle]:
    styles = {}
    for k, actor in enumerate(actors):
        rng = np.random.default_rng(np.random.SeedSequence([params.seed, 1, k]))
        n = params.noise
        gain = float(np.clip(np.exp(rng.normal(0, 0.25)), 0.6, 1.6))
        styles[actor] = ActorStyle(
            actor=actor,
            face_offset=rng.normal(0, 0.2 * n, len(FACE_PARAMS)) * _FACE_SCALE,
            voice_offset=rng.normal(0, 0.15 * n, len(VOICE_PARAMS)) * _VOICE_SCALE,
            face_gain=gain,
            voice_gain=float(np.clip(gain * np.exp(rng.normal(0, 0.15)), 0.5, 1.8)),
            f0_base=float(np.exp(rng.uniform(np.log(100), np.log(200)))),
            formant_scale=float(rng.uniform(0.92, 1.08)),
            affine=(
                float(rng.uniform(0.92, 1.08)),
                float(rng.uniform(0.94, 1.06)),
                float(rng.normal(0, 3)),
                float(rng.normal(0, 0.025)),
                float(rng.normal(0, 0.025)),
            ),
            colour=tuple(float(c) for c in rng.uniform(0.8, 1.15, 3)),  # type: ignore[arg-type]
            brightness=float(rng.normal(0, 12)),
        )
    return styles


# --------------------------------------------------------------------------- expression over time


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _smooth_noise(rng: np.random.Generator, n: int, k: int, *, width: float) -> np.ndarray:
    """(n, k) noise smoothed over about ``width`` samples, unit standard deviation."""
    raw = rng.normal(size=(n + int(4 * width) + 1, k))
    if width > 1:
        t = np.arange(-int(2 * width), int(2 * width) + 1)
        kernel = np.exp(-0.5 * (t / width) ** 2)
        kernel /= np.sqrt((kernel**2).sum())
        raw = np.stack([np.convolve(raw[:, j], kernel, mode="valid") for j in range(k)], axis=1)
    return raw[:n]


@dataclass(frozen=True)
class Expression:
    """A clip's expression: emotion weights over time and the perturbed prototypes."""

    weights: np.ndarray  # (n_times, 6) emotion activation at each time (frames)
    times: np.ndarray  # (n_times,) seconds
    face_protos: np.ndarray  # (6, 13) this clip's facial prototypes
    voice_protos: np.ndarray  # (6, 10) this clip's vocal prototypes


def clip_expression(spec: ClipSpec, times: np.ndarray, rng: np.random.Generator) -> Expression:
    """Emotion activations over ``times`` (seconds) and per-clip prototypes.

    Singles rise to ``0.4 + 0.2 * (intensity - 1)`` (neutral: 0); blends give
    the dominant emotion its salience from the start and let the other enter
    later with its own salience (50/50 in random order).
    """
    label = VALID_LABELS[spec.label_index]
    dur = spec.params.duration
    n = spec.params.noise
    weights = np.zeros((len(times), len(EMOTIONS)))
    if label.is_blend:
        parts = sorted(label.parts, key=lambda p: (-p[1], rng.random()))
        level = rng.uniform(0.85, 1.15)
        onsets = [rng.uniform(0.0, 0.15) * dur, rng.uniform(0.3, 0.5) * dur]
        for (e, s), onset in zip(parts, onsets):
            rise = rng.uniform(0.15, 0.3) * dur
            weights[:, EMOTIONS.index(e)] = level * s / 100 * _smoothstep((times - onset) / rise)
    elif label.emotions[0] != "neu":
        e = label.emotions[0]
        level = 0.4 + 0.2 * ((spec.intensity or 4) - 1)
        level *= rng.uniform(0.85, 1.15)
        onset = rng.uniform(0.0, 0.2) * dur
        rise = rng.uniform(0.15, 0.35) * dur
        weights[:, EMOTIONS.index(e)] = level * _smoothstep((times - onset) / rise)
    # Per-clip variation of how each emotion is shown.
    face = FACE_PROTOTYPES * (1 + rng.normal(0, 0.25 * n, FACE_PROTOTYPES.shape))
    face = face + rng.normal(0, 0.1 * n, face.shape) * _FACE_SCALE
    voice = VOICE_PROTOTYPES * (1 + rng.normal(0, 0.2 * n, VOICE_PROTOTYPES.shape))
    voice = voice + rng.normal(0, 0.08 * n, voice.shape) * _VOICE_SCALE
    return Expression(weights=weights, times=times, face_protos=face, voice_protos=voice)


# --------------------------------------------------------------------------- the face

# Landmarks of the astronaut's face (MediaPipe Face Mesh on skimage.data.astronaut(), full-image pixels).
_LANDMARKS = {
    "browL_out": (188.1, 91.1), "browL_mid": (198.8, 86.9), "browL_in": (215.9, 89.8),
    "browR_in": (235.8, 91.5), "browR_mid": (253.0, 90.7), "browR_out": (262.8, 96.0),
    "lidL_up": (202.8, 97.6), "lidL_lo": (203.4, 104.3), "lidR_up": (248.3, 99.7), "lidR_lo": (246.6, 106.7),
    "cheekL": (194.6, 111.0), "cheekR": (254.2, 114.5), "noseL": (208.0, 123.5), "noseR": (240.1, 125.3),
    "mouthL": (201.8, 139.2), "mouthR": (245.0, 141.0), "lipU": (223.5, 143.2), "lipU_out": (223.6, 140.5),
    "lipL": (223.0, 150.1), "lipL_out": (222.7, 154.6), "chin": (221.3, 177.4),
    "jawL": (184.9, 148.3), "jawR": (260.8, 152.9),
}
#: The face crop of the astronaut image: (top, left, side) in pixels.
_CROP = (28, 124, 200)

# For each warping parameter: (landmark, (dx, dy) in source pixels at 1.0, radius in pixels).
_WARPS: dict[str, list[tuple[str, tuple[float, float], float]]] = {
    "brow_raise": [(b, (0, -6), 9) for b in ("browL_out", "browL_mid", "browL_in", "browR_in", "browR_mid",
                                             "browR_out")],
    "brow_lower": [("browL_in", (3, 5), 8), ("browR_in", (-3, 5), 8), ("browL_mid", (1, 4), 8),
                   ("browR_mid", (-1, 4), 8), ("browL_out", (0, 2), 8), ("browR_out", (0, 2), 8)],
    "lid_open": [("lidL_up", (0, -3), 5), ("lidR_up", (0, -3), 5)],
    "lid_tight": [("lidL_lo", (0, -2.5), 5), ("lidR_lo", (0, -2.5), 5), ("cheekL", (0, -3), 10),
                  ("cheekR", (0, -3), 10)],
    "corner_up": [("mouthL", (-3, -5), 7), ("mouthR", (3, -5), 7)],
    "corner_down": [("mouthL", (0, 5), 7), ("mouthR", (0, 5), 7)],
    "lip_raise": [("lipU", (0, -4), 8), ("lipU_out", (0, -4), 8), ("noseL", (0, -2), 7), ("noseR", (0, -2), 7)],
    "jaw_open": [("lipL", (0, 9), 10), ("lipL_out", (0, 10), 12), ("chin", (0, 10), 22), ("mouthL", (0, 3), 7),
                 ("mouthR", (0, 3), 7)],
    "lip_stretch": [("mouthL", (-5, 1), 8), ("mouthR", (5, 1), 8)],
}


@lru_cache(maxsize=1)
def _face_assets() -> tuple[np.ndarray, np.ndarray]:
    """The cropped face (side, side, 3) float32 and warp basis (9, side, side, 2) float32.

    The crop ships with the package (``assets/astronaut_face.npz``, from scikit-image's
    ``data.astronaut()``, a public-domain NASA portrait); scikit-image is the fallback.
    """
    top, left, side = _CROP
    asset = Path(__file__).with_name("assets") / "astronaut_face.npz"
    if asset.exists():
        with np.load(asset) as z:
            image = z["image"].astype(np.float32)
    else:  # pragma: no cover - an install without the asset
        from skimage import data as skdata

        image = skdata.astronaut()[top : top + side, left : left + side].astype(np.float32)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    basis = np.zeros((_N_WARP, side, side, 2), np.float32)
    for k, name in enumerate(FACE_PARAMS[:_N_WARP]):
        for landmark, (dx, dy), radius in _WARPS[name]:
            x0, y0 = _LANDMARKS[landmark]
            g = np.exp(-((xx - (x0 - left)) ** 2 + (yy - (y0 - top)) ** 2) / (2 * radius**2))
            basis[k, :, :, 0] += dx * g
            basis[k, :, :, 1] += dy * g
    return image, basis


def _face_params(spec: ClipSpec, expr: Expression, rng: np.random.Generator, mouth: np.ndarray) -> np.ndarray:
    """(T, 13) facial parameters at the frame times."""
    n = spec.params.noise
    act = expr.weights @ expr.face_protos  # (T, 13)
    p = spec.actor.face_gain * act + spec.actor.face_offset
    p = p + 0.15 * n * _FACE_SCALE * _smooth_noise(rng, len(p), p.shape[1], width=spec.params.fps / 4)
    jaw = FACE_PARAMS.index("jaw_open")
    p[:, jaw] += 0.5 * mouth  # the mouth opens while vocalising
    return p


def render_frames(spec: ClipSpec, face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(T, size, size, 3) uint8 frames of the warped, moving, coloured face."""
    import cv2

    image, basis = _face_assets()
    side = image.shape[0]
    size = spec.params.size
    n_frames = len(face)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    scale, aspect, rot, dx, dy = spec.actor.affine
    # Head motion: slow wandering plus jitter (tremble, laughter nods).
    jitter = _smooth_noise(rng, n_frames, 3, width=max(1.0, spec.params.fps / 6))
    wander = _smooth_noise(rng, n_frames, 3, width=spec.params.fps / 2)
    colour = np.array(spec.actor.colour, np.float32)
    frames = np.empty((n_frames, size, size, 3), np.uint8)
    centre = side / 2
    for t in range(n_frames):
        disp = np.tensordot(face[t, :_N_WARP].astype(np.float32), basis, axes=1)
        warped = cv2.remap(
            image, xx - disp[..., 0], yy - disp[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        pitch, yaw, forward, jit = face[t, _N_WARP:]
        amp = 0.5 + 2.0 * max(jit, 0.0)
        s = scale * (1 + 0.06 * forward)
        angle = rot + amp * 1.5 * jitter[t, 0] + 1.0 * wander[t, 0]
        shift_x = dx * side + 7 * yaw + amp * jitter[t, 1] + wander[t, 1]
        shift_y = dy * side - 7 * pitch + amp * jitter[t, 2] + wander[t, 2]
        m = cv2.getRotationMatrix2D((centre, centre), angle, s)
        m[0, :2] *= aspect * (1 - 0.06 * abs(yaw))
        m[1, :2] *= 1 - 0.04 * abs(pitch)
        m[0, 2] = centre - (m[0, 0] * centre + m[0, 1] * centre) + shift_x
        m[1, 2] = centre - (m[1, 0] * centre + m[1, 1] * centre) + shift_y
        m *= size / side
        out = cv2.warpAffine(warped, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        out = out * colour + spec.actor.brightness
        out += rng.normal(0, 3.0 * spec.params.noise, out.shape).astype(np.float32)
        frames[t] = np.clip(out, 0, 255).astype(np.uint8)
    return frames


# --------------------------------------------------------------------------- the voice


def _resonator(freq: float, bandwidth: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    r = math.exp(-math.pi * bandwidth / sr)
    theta = 2 * math.pi * freq / sr
    a = np.array([1.0, -2 * r * math.cos(theta), r * r])
    b = np.array([a.sum()])  # unit gain at DC
    return b, a


def render_audio(spec: ClipSpec, expr: Expression, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The clip's waveform (float32 in [-1, 1] at 16 kHz) and its vocalisation envelope at ``expr.times``.

    Non-verbal vocalisation bursts: a glottal pulse train (pitch from the actor's
    base, the emotion's level and range, jitter) through a spectral-tilt filter
    and three formant resonators, mixed with aspiration noise, amplitude
    modulated (laughter pulses, sobs, tremor) and scaled by loudness.
    """
    from scipy.signal import lfilter

    sr = SAMPLE_RATE
    n = spec.params.noise
    dur = spec.params.duration
    n_samples = int(round(dur * sr))
    actor = spec.actor
    audio = rng.normal(0, 10 ** (-62 / 20), n_samples)  # room noise
    envelope = np.zeros(n_samples)

    def voice_at(t: float) -> tuple[np.ndarray, float]:
        i = int(np.clip(np.searchsorted(expr.times, t), 0, len(expr.times) - 1))
        w = expr.weights[i]
        v = actor.voice_gain * (w @ expr.voice_protos) + actor.voice_offset
        v = v + rng.normal(0, 0.08 * n, v.shape) * _VOICE_SCALE
        total = w.sum()
        am_rate = float((w @ _AM_RATE[: len(w)]) / total) if total > 1e-6 else _AM_RATE[-1]
        return v, am_rate

    t = rng.uniform(0.02, 0.2)
    while t < dur - 0.1:
        v, am_rate = voice_at(t)
        p = dict(zip(VOICE_PARAMS, v))
        rate = max(0.6, 1.5 + p["rate"])
        length = float(np.clip(rng.uniform(0.5, 0.9) / rate * 1.6, 0.12, 0.8))
        length = min(length, dur - t)
        m = int(length * sr)
        if m < 200:
            break
        u = np.linspace(0, 1, m)
        # Pitch: the level, a rise-fall by the range, jitter (roughness).
        semis = p["f0_level"] + max(p["f0_range"], 0) * (np.sin(np.pi * u) - 0.3 * u)
        jit = _smooth_noise(rng, m // 40 + 2, 1, width=1.0)[:, 0]
        semis = semis + np.interp(u, np.linspace(0, 1, len(jit)), jit) * (0.15 + 0.8 * max(p["rough"], 0))
        f0 = np.clip(actor.f0_base * 2 ** (semis / 12), 60, 900)
        phase = np.cumsum(f0 / sr) + rng.random()
        pulses = np.diff(np.floor(phase), prepend=np.floor(phase[0])).astype(float)
        shimmer = 1 + 0.3 * max(p["rough"], 0) * rng.normal(size=m)
        source = pulses * shimmer
        # Spectral tilt: a one-pole low-pass, darker when tilt < 0.
        pole = float(np.clip(0.9 - 0.12 * p["tilt"], 0.55, 0.985))
        source = lfilter([1 - pole], [1, -pole], source) * 40
        breath = float(np.clip(0.15 + 0.6 * p["breath"], 0.02, 0.95))
        excitation = (1 - breath) * source + breath * 0.5 * rng.normal(size=m)
        fs = actor.formant_scale
        f1 = float(np.clip((500 + p["f1"]) * fs, 200, 1100))
        f2 = float(np.clip((1500 + p["f2"]) * fs, 700, 2800))
        f3 = 2500 * fs
        y = np.zeros(m)
        for freq, bw, gain in ((f1, 90, 1.0), (f2, 120, 0.6), (f3, 180, 0.3)):
            b, a = _resonator(freq, bw, sr)
            y += gain * lfilter(b, a, excitation)
        # Envelope: attack / release, pulsing (laughter, sobs, tremor).
        env = np.minimum(1, np.minimum(u * length / 0.03, (1 - u) * length / 0.06))
        depth = float(np.clip(p["am_depth"], 0, 1))
        env = env * (1 - depth * 0.5 * (1 + np.cos(2 * np.pi * am_rate * u * length)))
        level = 10 ** ((p["loudness"] - 32) / 20)
        start = int(t * sr)
        audio[start : start + m] += level * env * y
        envelope[start : start + m] = np.maximum(envelope[start : start + m], env)
        gap = float(rng.exponential(0.5 / rate)) + 0.05
        t += length + gap
    peak = np.abs(audio).max()
    if peak > 0.98:
        audio *= 0.98 / peak
    # The mouth-opening signal at the frame times (mean envelope over each frame).
    frame_env = np.interp(expr.times, np.arange(n_samples) / sr, envelope)
    return audio.astype(np.float32), frame_env


# --------------------------------------------------------------------------- media


def write_media(path: Path, frames: np.ndarray, audio: np.ndarray, *, fps: int, sample_rate: int = SAMPLE_RATE) -> None:
    """Write ``frames`` (T, H, W, 3 uint8) and mono ``audio`` to an MP4 (H.264 + AAC).

    The file appears under its final name only once complete.
    """
    atomic_write(path, lambda fh: _mux(fh, frames, audio, fps=fps, sample_rate=sample_rate))


def _mux(fh: Any, frames: np.ndarray, audio: np.ndarray, *, fps: int, sample_rate: int) -> None:
    import av

    with av.open(fh, mode="w", format="mp4") as container:
        vs = container.add_stream("libx264", rate=fps)
        vs.width, vs.height = frames.shape[2], frames.shape[1]
        vs.pix_fmt = "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "23"}
        vs.thread_count = 1
        aus = container.add_stream("aac", rate=sample_rate)
        aus.layout = "mono"
        for frame in frames:
            for packet in vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in vs.encode():
            container.mux(packet)
        chunk = 1024
        for start in range(0, len(audio), chunk):
            piece = np.ascontiguousarray(audio[start : start + chunk].reshape(1, -1), dtype=np.float32)
            af = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
            af.sample_rate = sample_rate
            af.pts = start
            for packet in aus.encode(af):
                container.mux(packet)
        for packet in aus.encode():
            container.mux(packet)


def render_clip(spec: ClipSpec) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, size, size, 3) and waveform of one clip, deterministic in ``spec.seed``."""
    rng = np.random.default_rng(spec.seed)
    fps = spec.params.fps
    n_frames = int(round(spec.params.duration * fps))
    times = (np.arange(n_frames) + 0.5) / fps
    expr = clip_expression(spec, times, rng)
    audio, mouth = render_audio(spec, expr, rng)
    face = _face_params(spec, expr, rng, mouth)
    frames = render_frames(spec, face, rng)
    return frames, audio


def _write_clip(spec: ClipSpec) -> str:
    import cv2

    cv2.setNumThreads(1)
    frames, audio = render_clip(spec)
    write_media(Path(spec.path), frames, audio, fps=spec.params.fps)
    return spec.clip


# --------------------------------------------------------------------------- the dataset


def _read_state(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / "dataset.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _require_opencv() -> None:
    """The face renderer warps with OpenCV; say how to get it if it is missing."""
    import importlib.util

    if importlib.util.find_spec("cv2") is None:
        raise BlemoreError(
            "generating the synthetic dataset needs OpenCV (cv2): pip install 'blemore[face]' (MediaPipe brings "
            "opencv-contrib-python), or pip install opencv-python-headless"
        )


def generate_dataset(
    out: Path | str,
    *,
    actors: int = 12,
    seed: int = 0,
    duration: float = 2.0,
    fps: int = 10,
    size: int = 256,
    noise: float = 1.0,
    workers: int = 2,
    progress: bool = True,
) -> GeneratedDataset:
    """Generate (or reuse) a BLEMORE-style dataset in ``out``.

    Rerunning with the same parameters reuses a complete dataset at once and
    finishes an interrupted one (clips are written atomically); other parameters
    regenerate it. ``workers`` processes render clips in parallel.

    Examples
    --------
    >>> ds = generate_dataset("blemore-demo/data", actors=6, duration=1.0, progress=False)  # doctest: +SKIP
    >>> sorted(p.name for p in ds.root.iterdir())  # doctest: +SKIP
    ['dataset.json', 'test', 'test_key.csv', 'test_metadata.csv', 'test_truth.csv', 'train', 'train_metadata.csv']
    """
    started = time.perf_counter()
    params = DatasetParameters(
        actors=actors, seed=seed, duration=float(duration), fps=fps, size=size, noise=float(noise)
    ).check()
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise BlemoreError(f"{root}: exists and is not a folder; choose another output folder")
    state = _read_state(root)
    wanted = asdict(params)
    same = state is not None and state.get("parameters") == wanted
    if same and state.get("complete") and _files_present(root, state):
        return GeneratedDataset(root, params, True, time.perf_counter() - started)
    _check_not_foreign(root, state)
    _require_opencv()  # before anything is deleted or written
    _prepare_folders(root, wanted, start_again=state is not None and not same)

    plan = plan_dataset(actors=actors, seed=seed)
    _render_all(_clips_to_render(plan, root, params), workers=workers, progress=progress)
    _write_tables(root, plan, wanted, started)
    return GeneratedDataset(root, params, False, time.perf_counter() - started)


def _check_not_foreign(root: Path, state: dict[str, Any] | None) -> None:
    """Refuse a folder that holds something other than a generated dataset (nothing is deleted there)."""
    if state is not None or not root.exists() or (root / "train_metadata.csv").exists():
        return
    if any(p.name not in {"train", "test"} for p in root.iterdir()):
        leftovers = sorted(p.name for p in root.iterdir())[:3]
        raise BlemoreError(
            f"{root}: folder is not empty and holds no generated dataset ({', '.join(leftovers)}, ...); "
            "choose an empty or new folder"
        )


def _prepare_folders(root: Path, wanted: dict[str, Any], *, start_again: bool) -> None:
    """The clip folders, emptied if the dataset there had other parameters; ``dataset.json`` says: not complete."""
    if start_again:  # our own dataset with other parameters
        for sub in ("train", "test"):
            shutil.rmtree(root / sub, ignore_errors=True)
    for sub in ("train", "test"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        remove_temporaries(root / sub)  # left by an interrupted run
    write_json(root / "dataset.json", {"format": "blemore-synthetic", "parameters": wanted, "complete": False})


def _clips_to_render(plan: "Any", root: Path, params: DatasetParameters) -> list[ClipSpec]:
    """A spec for each clip of the plan whose file is not there yet (each clip's seed from its row)."""
    styles = _actor_styles(params, sorted(plan["actor"].unique()))
    specs = []
    for i, row in enumerate(plan.itertuples(index=False)):
        folder = "train" if row.partition == "train" else "test"
        path = root / folder / f"{row.filename}{EXTENSION}"
        if path.exists():
            continue
        seed_i = int(np.random.SeedSequence([params.seed, 2, i]).generate_state(1)[0])
        specs.append(
            ClipSpec(
                clip=row.clip,
                path=str(path),
                label_index=int(row.label_index),
                intensity=None if _isna(row.intensity) else int(row.intensity),
                seed=seed_i,
                actor=styles[row.actor],
                params=params,
            )
        )
    return specs


def _write_tables(root: Path, plan: "Any", wanted: dict[str, Any], started: float) -> None:
    """The metadata, truth and key tables, then ``dataset.json`` marked complete (last)."""
    train = plan[plan["partition"] == "train"]
    test = plan[plan["partition"] == "test"].sort_values("filename")
    write_csv(root / "train_metadata.csv", official_metadata(train), index=False)
    write_csv(root / "test_metadata.csv", official_metadata(test, labels=False, actors=False), index=False)
    write_csv(root / "test_truth.csv", official_metadata(test), index=False)
    write_csv(root / "test_key.csv", test[["filename", "clip"]].rename(columns={"clip": "original_name"}), index=False)
    write_json(
        root / "dataset.json",
        {
            "format": "blemore-synthetic",
            "parameters": wanted,
            "n_clips": int(len(plan)),
            "n_train": int(len(train)),
            "n_test": int(len(test)),
            "train_actors": sorted(train["actor"].unique().tolist()),
            "test_actors": sorted(test["actor"].unique().tolist()),
            "media": {"container": "mp4", "video": "h264", "audio": "aac", "sample_rate": SAMPLE_RATE},
            "generator": "blemore.data.synthetic",
            "seconds": round(time.perf_counter() - started, 2),
            "complete": True,
        },
    )


def _files_present(root: Path, state: dict[str, Any]) -> bool:
    """Whether a finished dataset still has all its clips and metadata files."""
    names = ("train_metadata.csv", "test_metadata.csv", "test_truth.csv")
    if not all((root / n).is_file() for n in names):
        return False
    n_train = sum(1 for _ in (root / "train").glob(f"*{EXTENSION}"))
    n_test = sum(1 for _ in (root / "test").glob(f"*{EXTENSION}"))
    return (n_train, n_test) == (state.get("n_train"), state.get("n_test"))


def _isna(x: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(x))


def _render_all(specs: list[ClipSpec], *, workers: int, progress: bool) -> None:
    from tqdm.auto import tqdm

    if not specs:
        return
    bar = tqdm(total=len(specs), desc="generating clips", unit="clip", disable=not progress)
    try:
        if workers <= 1:
            for spec in specs:
                _write_clip(spec)
                bar.update()
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_write_clip, s) for s in specs]
            for fut in as_completed(futures):
                fut.result()
                bar.update()
    finally:
        bar.close()
