"""The synthetic dataset behind a sample run: clips, noisy probabilities and the threshold search.

Training actors play every label (41 clips each: two intensities of five emotions, one neutral
clip, the 30 blends) in five actor-disjoint folds; test clips are anonymised (``test_0001`` ...)
with random labels. A model's probabilities are the soft label blurred towards random draws,
more for weaker models and harder actors (:func:`probabilities`).

>>> clips = sample_clips(np.random.default_rng(0), 5, 3)
>>> len(clips.names), clips.test_names, sorted(set(clips.folds.tolist()))
(205, ['test_0001', 'test_0002', 'test_0003'], [0, 1, 2, 3, 4])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from blemore.decoding import decode_thresholds
from blemore.labels import BLEND_EMOTIONS, LABEL_INDEX, LABEL_NAMES, SOFT_VECTORS, label_from_parts
from blemore.metrics import score_indices

__all__ = [
    "SampleClips",
    "BaselineCombo",
    "sample_clips",
    "probabilities",
    "threshold_grid",
    "best_cell",
    "clip_scores",
    "GRID",
    "COARSE",
    "N_FOLDS",
]

#: The alpha / beta grid of the baseline's threshold search (as ``blemore benchmark``'s).
GRID = np.linspace(0.05, 0.95, 20)
#: A coarser grid for the other methods of the sample.
COARSE = np.linspace(0.1, 0.9, 9)
#: Folds of the sample.
N_FOLDS = 5


@dataclass
class SampleClips:
    """The synthetic dataset: training clips in actor-disjoint folds and anonymised test clips."""

    names: list[str]
    actors: list[str]
    truth: np.ndarray
    folds: np.ndarray
    noise: np.ndarray
    test_names: list[str]
    test_truth: np.ndarray
    test_noise: np.ndarray

    @property
    def actor_ids(self) -> list[str]:
        return sorted(set(self.actors))


@dataclass
class BaselineCombo:
    """One baseline (feature set, model): its probabilities, per-fold choices and predictions."""

    feature_set: str
    model: str
    strength: float
    probs: np.ndarray
    test_probs: np.ndarray
    pred: np.ndarray
    chosen: np.ndarray
    pooled: np.ndarray
    rows: list[dict] = field(default_factory=list)


def _sample_names(n_actors: int) -> tuple[list[str], list[str]]:
    names, actors = [], []
    for a in range(n_actors):
        actor = f"A{101 + a}"
        for e in BLEND_EMOTIONS:
            for level in (1, 2):
                names.append(f"{actor}_{e}_int{level}_ver1")
        names.append(f"{actor}_neu_sit1_ver1")
        for e1, e2 in combinations(BLEND_EMOTIONS, 2):
            for s1, s2 in ((50, 50), (70, 30), (30, 70)):
                names.append(f"{actor}_mix_{e1}_{e2}_{s1}_{s2}_ver1")
        actors += [actor] * (len(names) - len(actors))
    return names, actors


def _label_of(name: str) -> int:
    parts = name.split("_")
    if parts[1] == "mix":
        e1, e2, s1, s2 = parts[2:6]
        return LABEL_INDEX[label_from_parts([(e1, int(s1)), (e2, int(s2))]).name]
    return LABEL_INDEX[parts[1]]


def sample_clips(rng: np.random.Generator, n_actors: int, n_test: int) -> SampleClips:
    names, actors = _sample_names(n_actors)
    actor_ids = sorted(set(actors))
    actor_fold = {a: i % N_FOLDS for i, a in enumerate(rng.permutation(actor_ids))}
    actor_noise = {a: rng.uniform(0.35, 0.95) for a in actor_ids}
    return SampleClips(
        names=names,
        actors=actors,
        truth=np.array([_label_of(n) for n in names], dtype=np.int64),
        folds=np.array([actor_fold[a] for a in actors]),
        noise=np.array([actor_noise[a] for a in actors]),
        test_names=[f"test_{i + 1:04d}" for i in range(n_test)],
        test_truth=rng.integers(0, len(LABEL_NAMES), size=n_test),
        test_noise=rng.uniform(0.35, 0.95, size=n_test),
    )


def clip_scores(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    if len(truth) == 0:
        return float("nan"), float("nan"), float("nan")
    s = score_indices(truth, pred)
    return s.acc_presence, s.acc_salience, s.score


def threshold_grid(
    probs: np.ndarray, truth: np.ndarray, values: np.ndarray = GRID
) -> tuple[np.ndarray, np.ndarray]:
    presence = np.zeros((len(values), len(values)))
    salience = np.zeros_like(presence)
    for a, alpha in enumerate(values):
        for b, beta in enumerate(values):
            presence[a, b], salience[a, b], _ = clip_scores(truth, decode_thresholds(probs, alpha, beta))
    return presence, salience


def best_cell(presence: np.ndarray, salience: np.ndarray, values: np.ndarray = GRID) -> np.ndarray:
    a, b = np.unravel_index(np.argmax(presence + salience), presence.shape)
    return np.array([values[a], values[b]])


def probabilities(
    truth: np.ndarray, noise: np.ndarray, strength: float, rng: np.random.Generator
) -> np.ndarray:
    """The soft target blurred towards random Dirichlet draws; weaker models and harder actors blur more."""
    w = np.clip(noise / strength, 0.02, 0.98)[:, None]
    return (1 - w) * SOFT_VECTORS[truth] + w * rng.dirichlet(np.full(6, 0.6), size=len(truth))
