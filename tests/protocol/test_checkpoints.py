"""Finished units saved beside a run in progress: a killed benchmark resumes to the same bytes."""

from __future__ import annotations

import dataclasses
import errno
from pathlib import Path

import numpy as np
import pytest

from blemore.protocol import run as run_module
from blemore.protocol.checkpoints import UnitStore, unit_digest
from blemore.protocol.config import RunConfig, resolve_inputs
from blemore.protocol.context import build_context
from blemore.protocol.run import plan, run_benchmark
from blemore.protocol.units import train_unit
from tests.support.planted import planted

METHODS = ["baseline", "head36", "late-fusion"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    return planted(tmp_path_factory.mktemp("planted"), n_actors=10, n_test_actors=2, sources=2, dim=6)


def _config(data: dict, out: Path) -> RunConfig:
    return RunConfig(features=data["sources"], train_metadata=data["train_metadata"],
                     test_metadata=data["test_metadata"], sets=["s0+s1"], models=["mlp256"], epochs=5, lr=3e-3,
                     methods=METHODS, out=out, progress=False)


def _units(data: dict, tmp_path: Path) -> list:
    config = _config(data, tmp_path / "run")
    inputs = resolve_inputs(config)
    _, specs = plan(config, inputs)
    ctx = build_context(config, inputs, list(specs))
    return [(spec, ctx.unit_data(key)) for key, spec in specs.items()]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and p.name != "config.json"}  # config.json records the run's own folder and times


def test_a_run_stopped_after_some_units_resumes_with_only_the_others_and_the_same_files(data, tmp_path, monkeypatch, capsys):
    clean = run_benchmark(_config(data, tmp_path / "clean"))
    trained: list[str] = []

    def stop_at_third(spec, unit_data, progress=None):
        if len(trained) == 2:
            raise KeyboardInterrupt  # the user's Ctrl-C, or a kill, while the third unit trains
        trained.append(spec.key.label)
        return train_unit(spec, unit_data, progress)

    monkeypatch.setattr(run_module, "train_unit", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(_config(data, tmp_path / "run"))
    store = UnitStore.beside(tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert len(list(store.folder.glob("*.npz"))) == 2  # the two finished units, saved

    rerun: list[str] = []

    def counting(spec, unit_data, progress=None):
        rerun.append(spec.key.label)
        return train_unit(spec, unit_data, progress)

    monkeypatch.setattr(run_module, "train_unit", counting)
    capsys.readouterr()
    run_benchmark(dataclasses.replace(_config(data, tmp_path / "run"), progress=True))
    assert f"resuming: 2 of 4 units already trained (in {store.folder})" in capsys.readouterr().err
    everything = [spec.key.label for spec, _ in _units(data, tmp_path)]
    assert len(everything) == 4  # the fused set's KL and 36-way heads, a KL head per source
    assert sorted(rerun) == sorted(set(everything) - set(trained))  # only the units that had not finished
    assert _files(tmp_path / "run") == _files(clean)
    assert not store.folder.exists()  # removed once the run is published


def test_a_saved_unit_loads_back_exactly(data, tmp_path):
    store = UnitStore(tmp_path / "units")
    kept = 0
    for spec, unit_data in _units(data, tmp_path):
        unit = train_unit(spec, unit_data)
        kept += len(unit.kept)
        assert store.save(spec, unit_data, unit)
        back = store.load(spec, unit_data)
        assert back is not None and back.key == unit.key and back.seeds == unit.seeds
        for m, n in zip(back.plan, unit.plan, strict=True):
            assert (m.role, m.outer, m.inner) == (n.role, n.outer, n.inner)
            assert np.array_equal(m.train, n.train) and np.array_equal(m.eval, n.eval)
        assert back.flops == unit.flops
        assert [o is None for o in back.outputs] == [o is None for o in unit.outputs]
        for a, b in zip(back.outputs, unit.outputs):
            if a is not None:
                assert a.dtype == b.dtype and np.array_equal(a, b)
        assert np.array_equal(back.train_loss, unit.train_loss)
        assert back.kept.keys() == unit.kept.keys()
        for tag, (epoch, head) in unit.kept.items():
            assert back.kept[tag][0] == epoch
            for name, value in head.as_dict().items():
                saved = back.kept[tag][1].as_dict()[name]
                assert saved.dtype == value.dtype and np.array_equal(saved, value)
    assert kept  # models kept at selected epochs went through the round trip too


def test_a_unit_of_other_settings_or_other_data_is_not_reused(data, tmp_path):
    store = UnitStore(tmp_path / "units")
    spec, unit_data = _units(data, tmp_path)[0]
    store.save(spec, unit_data, train_unit(spec, unit_data))
    assert store.load(spec, unit_data) is not None
    other_lr = dataclasses.replace(spec, config=dataclasses.replace(spec.config, lr=spec.config.lr * 2))
    other_seed = dataclasses.replace(spec, seed=spec.seed + 1)
    as_numpy = [dataclasses.replace(spec, seed=np.int64(seed)) for seed in (spec.seed, spec.seed + 1)]
    assert unit_digest(as_numpy[0], unit_data) == unit_digest(spec, unit_data)  # numpy's ints count by value
    assert unit_digest(as_numpy[1], unit_data) == unit_digest(other_seed, unit_data)
    moved = dataclasses.replace(unit_data, X=unit_data.X + np.float32(1e-3))
    refolded = dataclasses.replace(unit_data, folds=np.roll(unit_data.folds, 1))
    for s, d in ((other_lr, unit_data), (other_seed, unit_data), (spec, moved), (spec, refolded)):
        assert unit_digest(s, d) != unit_digest(spec, unit_data)
        assert store.load(s, d) is None


def test_a_damaged_saved_unit_is_trained_again_not_trusted(data, tmp_path):
    store = UnitStore(tmp_path / "units")
    spec, unit_data = _units(data, tmp_path)[0]
    store.save(spec, unit_data, train_unit(spec, unit_data))
    path = store.path(unit_digest(spec, unit_data))
    path.write_bytes(path.read_bytes()[:200])  # cut short
    assert store.load(spec, unit_data) is None


def test_a_unit_that_cannot_be_saved_does_not_stop_the_run(data, tmp_path, monkeypatch):
    from blemore import io

    def full_disk(path, **arrays):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    spec, unit_data = _units(data, tmp_path)[0]
    store = UnitStore(tmp_path / "units")
    monkeypatch.setattr(io, "save_npz", full_disk)
    assert store.save(spec, unit_data, train_unit(spec, unit_data)) is False
    assert not store.folder.exists()  # nothing left behind, not even the empty folder


def test_clearing_removes_only_saved_units(tmp_path):
    store = UnitStore.beside(tmp_path / "run")
    store.folder.mkdir()
    (store.folder / ("0" * 32 + ".npz")).write_bytes(b"unit")
    (store.folder / "notes.txt").write_text("the user's")
    store.clear()
    assert [p.name for p in store.folder.iterdir()] == ["notes.txt"]
    (store.folder / "notes.txt").unlink()
    store.clear()
    assert not store.folder.exists()


def test_the_module_example():
    import doctest

    from blemore.protocol import checkpoints

    result = doctest.testmod(checkpoints)
    assert result.failed == 0 and result.attempted > 0
