"""The run's settings (:class:`RunConfig`) and the inputs they resolve to (:func:`resolve_inputs`).

Everything is checked here, before any feature is loaded or any model trained: metadata and
folds, test clips (none of them a training clip, none of their actors a training actor),
training settings, feature sets, heads, methods and the needs of each method.

>>> c = RunConfig(features={"a": Path("a.npz")}, representation="subsampled")
>>> (c.effective_window, c.effective_batch_size, c.effective_epochs)
(1, 512, 300)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd

from blemore.data.metadata import check_folds, metadata_from_names, read_clip_names, read_metadata
from blemore.errors import BlemoreError
from blemore.features.loading import parse_set_names
from blemore.models.heads import parse_model_list
from blemore.protocol.actors import is_missing_actor
from blemore.protocol.units import PaperTest

__all__ = ["RunConfig", "Inputs", "resolve_inputs", "Representation", "TestActors", "SUBSAMPLED_DEFAULTS"]

#: ``stats``: seven statistics per clip; ``windows``: means of ``window`` frames, each a sample
#: (a clip averages its windows' logits); ``subsampled``: every stored row a sample (per-window
#: encoder outputs, the official subsampled protocol), batch 512 and 300 epochs unless given.
Representation = Literal["stats", "windows", "subsampled"]
#: Actors of test clips without one: ``auto`` discovers pseudo-actors (k estimated), a number
#: sets k, ``none`` refuses methods that need actors.
TestActors = str
#: The official subsampled protocol's settings (main_subsampling.py).
SUBSAMPLED_DEFAULTS = {"batch_size": 512, "epochs": 300}


@dataclass
class RunConfig:
    """Everything a run needs; the CLI builds it from its options.

    Give either ``train_metadata`` (official CSV with folds) or ``clips`` (a text file of
    descriptive clip names; folds generated actor-disjoint with ``seed``). ``features`` maps
    names to a ``.npz`` (X, filenames) or a folder of ``.npy``. ``epochs`` and
    ``batch_size`` None mean the representation's default (the paper's 200 and 32; 300 and
    512 for ``subsampled``).
    """

    features: dict[str, Path]
    train_metadata: Path | None = None
    clips: Path | None = None
    test_metadata: Path | None = None
    sets: list[str] | None = None
    models: list[str] = field(default_factory=lambda: ["linear", "mlp256", "mlp512"])
    methods: list[str] = field(default_factory=lambda: ["baseline"])
    representation: Representation = "stats"
    window: int = 16
    epochs: int | None = None
    lr: float = 5e-6
    weight_decay: float = 1e-3
    batch_size: int | None = None
    seed: int = 0
    n_folds: int = 5
    out: Path | None = None
    overwrite: bool = False
    paper_test: PaperTest = "all-epochs"
    nested: bool = True
    ensemble_seeds: int = 1
    test_actors: TestActors = "auto"
    n_boot: int = 1000
    n_perm: int = 2000
    attention_epochs: int = 15
    attention_lr: float = 1e-3
    max_frames: int = 32
    attention_layers: int = 1
    device: str = "auto"
    progress: bool = True
    threads: int | None = None
    command: list[str] | None = None

    @property
    def effective_window(self) -> int:
        return 1 if self.representation == "subsampled" else int(self.window)

    @property
    def effective_epochs(self) -> int:
        return int(self.epochs if self.epochs is not None else
                   SUBSAMPLED_DEFAULTS["epochs"] if self.representation == "subsampled" else 200)

    @property
    def effective_batch_size(self) -> int:
        return int(self.batch_size if self.batch_size is not None else
                   SUBSAMPLED_DEFAULTS["batch_size"] if self.representation == "subsampled" else 32)

    @property
    def loading_representation(self) -> str:
        """How feature files are read: ``stats`` or ``windows`` (``subsampled`` = windows of one row)."""
        return "stats" if self.representation == "stats" else "windows"

    def train_config(self):
        from blemore.models.trainer import TrainConfig

        return TrainConfig(epochs=self.effective_epochs, lr=self.lr, weight_decay=self.weight_decay,
                           batch_size=self.effective_batch_size, threads=self.threads, device=self.device)

    def to_json(self) -> dict:
        d = asdict(self)
        d["features"] = {k: str(v) for k, v in self.features.items()}
        for k in ("train_metadata", "clips", "test_metadata", "out"):
            d[k] = None if d[k] is None else str(d[k])
        d["effective"] = {"epochs": self.effective_epochs, "batch_size": self.effective_batch_size,
                          "window": self.effective_window}
        return d


@dataclass
class Inputs:
    """What a configuration resolves to: training and test metadata, folds, sets, heads, methods."""

    train: pd.DataFrame
    test: pd.DataFrame | None
    fold_ids: list[int]
    sets: list[str]
    models: list[str]
    methods: list[str]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def sources(self) -> list[str]:
        """Every feature source the sets name, in order."""
        return list(dict.fromkeys(p for s in self.sets for p in s.split("+")))

    @property
    def test_labelled(self) -> bool:
        return self.test is not None and len(self.test) > 0 and bool(self.test["label_index"].notna().all())

    @property
    def test_actors_known(self) -> bool:
        return self.test is None or not any(is_missing_actor(a) for a in self.test["actor"])


def _read_train(config: RunConfig) -> tuple[pd.DataFrame, list[int]]:
    if (config.train_metadata is None) == (config.clips is None):
        raise BlemoreError("give either --train-metadata (official CSV with folds) or --clips (a list of clip names)")
    if config.train_metadata is not None:
        train, source = read_metadata(config.train_metadata), str(config.train_metadata)
    else:
        train = metadata_from_names(read_clip_names(config.clips), n_folds=config.n_folds, seed=config.seed)
        source = str(config.clips)
    train = train.reset_index(drop=True)
    unlabelled = train["label_index"].isna()
    if unlabelled.any():
        raise BlemoreError(f"{source}: {int(unlabelled.sum())} training clip(s) have no label "
                           f"(e.g. {train.loc[unlabelled, 'filename'].iloc[0]!r})")
    return train, sorted(int(f) for f in check_folds(train, source=source))


def _read_test(config: RunConfig, train: pd.DataFrame) -> pd.DataFrame | None:
    from blemore.data.metadata import check_actor_disjoint
    from blemore.labels import clip_name_problem

    if config.test_metadata is None:
        return None
    test = read_metadata(config.test_metadata).reset_index(drop=True)
    overlap = sorted(set(test.filename) & set(train.filename))
    if overlap:
        raise BlemoreError(
            f"{config.test_metadata}: {len(overlap)} clip(s) are also training clips (e.g. {overlap[0]!r})"
        )
    check_actor_disjoint(train, test, source=str(config.test_metadata))
    for name in test.filename:  # checked now, not when the submission is written hours later
        problem = clip_name_problem(name)
        if problem:
            raise BlemoreError(f"{config.test_metadata}: {problem}")
    test["fold"] = pd.array([pd.NA] * len(test), dtype="Int64")
    return test


def _check_options(config: RunConfig) -> None:
    from blemore.models.attention import AttentionConfig

    from blemore.models.trainer import resolve_device

    config.train_config()  # checks epochs, lr, weight decay, batch size, threads
    resolve_device(config.device)  # an unknown device, or CUDA where there is none: refused before any work
    if config.representation not in get_args(Representation):
        raise BlemoreError(f"unknown representation {config.representation!r}: expected stats, windows or subsampled")
    if config.window < 1:
        raise BlemoreError(f"window must be >= 1 frame, got window={config.window}")
    if config.paper_test not in get_args(PaperTest):
        raise BlemoreError(f"unknown --paper-test {config.paper_test!r}: expected {', '.join(get_args(PaperTest))}")
    if config.paper_test == "retrain-100" and config.effective_epochs < 100:
        raise BlemoreError(f"--paper-test retrain-100 needs at least 100 epochs, got --epochs {config.effective_epochs}")
    if config.n_boot < 0 or config.n_perm < 0:
        raise BlemoreError(f"n_boot and n_perm must be >= 0, got {config.n_boot} and {config.n_perm}")
    if config.ensemble_seeds < 1:
        raise BlemoreError(f"--ensemble-seeds must be >= 1, got {config.ensemble_seeds}")
    parse_test_actors(config.test_actors)
    AttentionConfig(epochs=config.attention_epochs, lr=config.attention_lr, max_frames=config.max_frames,
                    layers=config.attention_layers)


def parse_test_actors(value: str | int) -> int | str:
    """``"auto"`` | ``"none"`` | a number of actors (>= 1)."""
    text = str(value).strip().lower()
    if text in ("auto", "none"):
        return text
    try:
        k = int(text)
    except ValueError:
        raise BlemoreError(f"--test-actors {value!r}: expected auto, none or a number of actors") from None
    if k < 1:
        raise BlemoreError(f"--test-actors must be >= 1, got {k}")
    return k


def resolve_inputs(config: RunConfig) -> Inputs:
    """Read and check the metadata and options of ``config``; raise :class:`BlemoreError` on bad input."""
    from blemore.protocol.methods import applicable, parse_methods

    train, fold_ids = _read_train(config)
    test = _read_test(config, train)
    _check_options(config)
    sets = parse_set_names(config.sets, config.features)
    models = parse_model_list(config.models)
    asked = parse_methods(config.methods)
    explicit = not any(str(m).strip().lower() == "all" for item in config.methods for m in str(item).split(","))
    sources = list(dict.fromkeys(p for s in sets for p in s.split("+")))
    frame_sources = [s for s in sources if Path(config.features[s]).is_dir()]
    found = applicable(asked, sources=sources, frame_sources=frame_sources, explicit=explicit)
    inputs = Inputs(train, test, fold_ids, sets, models, found.methods, found.skipped)
    _check_actor_needs(config, inputs)
    return inputs


def _check_actor_needs(config: RunConfig, inputs: Inputs) -> None:
    from blemore.protocol.methods import METHODS

    needing = [m for m in inputs.methods if METHODS[m].needs_actors]
    if not needing or inputs.test is None or inputs.test_actors_known:
        return
    if parse_test_actors(config.test_actors) == "none":
        raise BlemoreError(
            f"{', '.join(needing)} needs the actor of every test clip, and {config.test_metadata} has none for some "
            "(anonymised clips): pass --test-actors auto (discover pseudo-actors) or a number of actors"
        )
    if isinstance(parse_test_actors(config.test_actors), int) and parse_test_actors(config.test_actors) > len(inputs.test):
        raise BlemoreError(f"--test-actors {config.test_actors}: more actors than the {len(inputs.test)} test clips")


def training_arrays(inputs: Inputs) -> tuple[np.ndarray, np.ndarray]:
    """(label indices, folds) of the training clips."""
    return (inputs.train["label_index"].to_numpy(dtype=np.int64), inputs.train["fold"].to_numpy(dtype=np.int64))


__all__ += ["parse_test_actors", "training_arrays"]
