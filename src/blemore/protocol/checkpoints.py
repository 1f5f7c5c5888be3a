"""Finished training units of a run in progress, so that a killed ``blemore benchmark`` resumes.

Training is most of a benchmark's time (an hour and more for every method at the paper's 200
epochs on a CPU). Each unit, once trained, is saved beside the run's final place, in the hidden
folder ``.<name>.units/``, under a digest of everything its training reads: the unit's spec
(head, feature set, transform, folds, training settings and device, seed, selection tracking)
and its data (rows, row-to-clip map, truth, folds, frame sequences). A rerun into the same
place loads the units whose digest matches and trains only the others, so its run folder holds
the same bytes as a run that was never stopped; a unit trained from other inputs or settings
never matches. The folder is removed once the run is published.

Saving is best effort: a unit that cannot be saved (a full disk, a read-only folder) is simply
trained again after a kill; a saved file that cannot be read back is ignored in the same way.

>>> store = UnitStore.beside(Path("runs/demo"))
>>> store.folder
PosixPath('runs/.demo.units')
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blemore import io
from blemore.errors import BlemoreError
from blemore.models.trainer import HeadParams, resolve_device
from blemore.protocol.units import TrainedUnit, UnitData, UnitSpec, unit_plan

__all__ = ["UnitStore", "unit_digest"]

#: Bumped whenever what a unit's training reads or returns changes shape.
FORMAT = 1
_DIGEST = re.compile(r"[0-9a-f]{32}")


def _describe(value: Any) -> Any:
    """A JSON-able description of a spec field (dataclasses by their fields, decoders by class and state)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {type(value).__name__: _describe(asdict(value))}
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "__dict__"):
        return {type(value).__name__: _describe(dict(vars(value)))}
    return repr(value)  # a value without state of its own to describe (a path, an enum member)


def _hash_arrays(h: Any, *arrays: Any) -> None:
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)


def unit_digest(spec: UnitSpec, data: UnitData) -> str:
    """A digest of everything that decides a unit's training (spec, resolved device, data)."""
    h = hashlib.sha256()
    described = {"format": FORMAT, "spec": _describe(spec), "device": str(resolve_device(spec.config.device)),
                 "n_train": data.n_train, "n_clips": data.n_clips}
    h.update(json.dumps(described, sort_keys=True, default=repr).encode())
    _hash_arrays(h, data.X, data.row_clip, data.truth, data.folds)
    seq = data.sequences
    if seq is not None:
        _hash_arrays(h, *seq.tokens, seq.mask, seq.positions)
    return h.hexdigest()[:32]


class UnitStore:
    """Trained units saved under ``folder``, one ``<digest>.npz`` each."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @classmethod
    def beside(cls, out: Path) -> UnitStore:
        """The store of a run that will be published at ``out``."""
        out = Path(out)
        return cls(out.parent / f".{out.name}.units")

    def path(self, digest: str) -> Path:
        return self.folder / f"{digest}.npz"

    def load(self, spec: UnitSpec, data: UnitData) -> TrainedUnit | None:
        """The unit saved for exactly this spec and data, or None (never saved, or unreadable)."""
        digest = unit_digest(spec, data)
        try:
            arrays = io.load_npz(self.path(digest))
            return _unit_from_arrays(arrays, spec, data, digest)
        except (OSError, BlemoreError, KeyError, ValueError):
            return None

    def save(self, spec: UnitSpec, data: UnitData, unit: TrainedUnit) -> bool:
        """Save a trained unit; False (and nothing left behind) where it cannot be written."""
        if any(not isinstance(head, HeadParams) for _, head in unit.kept.values()):
            return False  # pragma: no cover - only head units keep models while training
        digest = unit_digest(spec, data)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            io.save_npz(self.path(digest), **_unit_arrays(unit, digest))
        except OSError:
            try:
                self.folder.rmdir()  # only where this save made it and nothing is in it
            except OSError:
                pass
            return False
        return True

    def clear(self) -> None:
        """Remove the saved units and then the folder, if nothing else is in it (after the run is published)."""
        for path in self.folder.glob("*.npz"):
            if _DIGEST.fullmatch(path.stem):
                path.unlink(missing_ok=True)
        io.remove_temporaries(self.folder)  # a save cut short by a kill
        try:
            self.folder.rmdir()
        except OSError:
            pass


def _unit_arrays(unit: TrainedUnit, digest: str) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    present = [i for i, o in enumerate(unit.outputs) if o is not None]
    for i in present:
        arrays[f"output_{i}"] = unit.outputs[i]
    if unit.train_loss is not None:
        arrays["train_loss"] = unit.train_loss
    kept = []
    for j, (tag, (epoch, head)) in enumerate(unit.kept.items()):
        kept.append([tag, int(epoch)])
        for name, value in head.as_dict().items():
            arrays[f"kept_{j}_{name}"] = value
    meta = {"format": FORMAT, "digest": digest, "n_outputs": len(unit.outputs), "present": present,
            "kept": kept, "flops": unit.flops}
    arrays["meta"] = np.asarray(json.dumps(meta))
    return arrays


def _unit_from_arrays(arrays: dict[str, np.ndarray], spec: UnitSpec, data: UnitData, digest: str) -> TrainedUnit:
    meta = json.loads(str(arrays["meta"]))
    plan, seeds = unit_plan(spec, data)
    if meta["format"] != FORMAT or meta["digest"] != digest or meta["n_outputs"] != len(plan):
        raise ValueError("a unit saved for other inputs")
    outputs: list[np.ndarray | None] = [None] * len(plan)
    for i in meta["present"]:
        outputs[int(i)] = arrays[f"output_{int(i)}"]
    kept: dict[str, tuple[int, Any]] = {}
    for j, (tag, epoch) in enumerate(meta["kept"]):
        prefix = f"kept_{j}_"
        head = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        kept[str(tag)] = (int(epoch), HeadParams.from_dict(head, source="a saved unit"))
    return TrainedUnit(spec.key, plan, seeds, outputs, arrays.get("train_loss"), kept, float(meta["flops"]))
