"""Reading report pages and run folders in tests of the report: sections, notes, images, tables."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd


class Page(HTMLParser):
    """Collects what the tests check: sections, notes, images, every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[dict[str, str]] = []
        self.urls: list[str] = []
        self.notes: list[str] = []
        self._in_note = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.sections.append(a.get("id", ""))
        if tag == "img":
            self.images.append(a)
        for key in ("src", "href", "action", "data", "poster", "srcset"):
            if key in a:
                self.urls.append(a[key])
        if "note" in a.get("class", "").split():
            self._in_note += 1
            self.notes.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self._in_note:
            self._in_note -= 1

    def handle_data(self, data: str) -> None:
        if self._in_note:
            self.notes[-1] += data


def parse(page: str) -> Page:
    p = Page()
    p.feed(page)
    return p


def sections(page: str) -> dict[str, str]:
    """Section id -> its HTML."""
    return dict(re.findall(r'<section id="(\w+)">(.*?)</section>', page, flags=re.S))


def text(fragment: str) -> str:
    """The visible text of an HTML fragment, whitespace collapsed, entities kept."""
    return " ".join(re.sub(r"<[^>]+>", " ", fragment).split())


def tables(fragment: str) -> list[list[list[str]]]:
    """Every table of ``fragment`` as rows of cell texts (header row first)."""
    out = []
    for body in re.findall(r"<table>(.*?)</table>", fragment, flags=re.S):
        rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)
        out.append([[text(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, flags=re.S)] for r in rows])
    return out


def copy_run(src: Path, dst: Path, *, drop: tuple[str, ...] = ()) -> Path:
    """A copy of a run folder without its report and without the parts in ``drop``."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("report.html"))
    for name in drop:
        target = dst / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    return dst


def real_run(tmp: Path, *, anonymous: bool, methods: str = "baseline,actor-norm,ensemble") -> Path:
    """A small real run of ``blemore benchmark`` on planted data with two feature sets.

    ``anonymous``: the test clips as the challenge hands them out (``test_0001`` ..., no actors,
    no labels; actor-norm finds pseudo-actors), then scored against their truth as ``blemore
    demo`` does (``test_scores.json``); otherwise labelled test clips (test rows in
    ``compare.csv``).
    """
    from blemore.demo import score_held_out
    from blemore.protocol.config import RunConfig
    from blemore.protocol.run import run_benchmark
    from tests.support.planted import planted

    d = planted(
        tmp, n_actors=10, n_test_actors=2, dim=12, signal=2.0, noise=0.5, actor_sd=1.5, seed=4, sources=2
    )
    sources, test_metadata = d["sources"], d["test_metadata"]
    if anonymous:
        test_metadata, sources, truth = _anonymise(d, tmp)
    config = RunConfig(
        features=sources,
        train_metadata=d["train_metadata"],
        test_metadata=test_metadata,
        models=["linear"],
        epochs=5,
        lr=1e-2,
        out=tmp / "run",
        progress=False,
        n_boot=50,
        n_perm=50,
        methods=[methods],
        sets=["s0", "s1"],
        command=["blemore", "benchmark", "(test)"],
    )
    run = run_benchmark(config)
    if anonymous:
        score_held_out(run, truth)
    return run


def _anonymise(d: dict, tmp: Path) -> tuple[Path, dict, Path]:
    import numpy as np

    test = pd.read_csv(d["test_metadata"])
    mapping = {n: f"test_{i + 1:04d}" for i, n in enumerate(test.filename)}
    blank = dict.fromkeys(
        ("video_id", "fold", "mix", "emotion_1", "emotion_2", "emotion_1_salience", "emotion_2_salience"), ""
    )
    pd.DataFrame({"filename": [mapping[n] for n in test.filename], **blank}).to_csv(
        tmp / "anon.csv", index=False
    )
    test.assign(filename=[mapping[n] for n in test.filename]).to_csv(tmp / "truth.csv", index=False)
    sources = {}
    for name, path in d["sources"].items():
        z = np.load(path)
        names = np.array([mapping.get(str(n), str(n)) for n in z["filenames"]])
        np.savez(tmp / f"{name}_anon.npz", X=z["X"], filenames=names)
        sources[name] = tmp / f"{name}_anon.npz"
    return tmp / "anon.csv", sources, tmp / "truth.csv"


__all__ = ["Page", "parse", "sections", "text", "tables", "copy_run", "real_run"]
