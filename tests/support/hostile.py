"""Helpers of the hostile battery: run a command, check the one-line promise, count what was tried.

The promise every command keeps under bad input: exit code 2, exactly one line on stderr
(``blemore: error: ...``) naming the user's file or clip, no traceback, and every file that
existed before the command byte-identical afterwards (no temporary file left behind either).
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from typer.testing import CliRunner

from blemore.cli import app
from blemore.io import is_temporary

#: Inputs tried per command, filled as the battery runs (see :func:`write_counts`).
COUNTS: Counter[str] = Counter()

_runner = CliRunner()


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    @property
    def crashed(self) -> bool:
        """An exception escaped the command (the user would have seen a traceback)."""
        return self.exception is not None and not isinstance(self.exception, SystemExit)


def invoke(args: Sequence[Any]) -> Outcome:
    """Run ``blemore ARGS`` in this process (stdout and stderr apart)."""
    result = _runner.invoke(app, [str(a) for a in args])
    return Outcome(result.exit_code, result.stdout, result.stderr, result.exception)


def snapshot(*roots: Path) -> dict[Path, bytes]:
    """Every file under ``roots`` (or the files themselves) with its bytes."""
    files: dict[Path, bytes] = {}
    for root in roots:
        root = Path(root)
        if root.is_file():
            files[root] = root.read_bytes()
        elif root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    files[path] = path.read_bytes()
    return files


def check_unchanged(before: dict[Path, bytes], roots: Iterable[Path]) -> None:
    """Every file of ``before`` still holds its bytes; no temporary file of an atomic write is left."""
    for path, data in before.items():
        assert path.is_file(), f"{path} was deleted"
        assert path.read_bytes() == data, f"{path} was changed"
    for root in roots:
        root = Path(root)
        if root.is_dir():
            left = [p for p in root.rglob("*") if is_temporary(p)]
            assert not left, f"temporary files left behind: {left}"


def one_line(outcome: Outcome, names: Sequence[Any]) -> str:
    """Assert the one-line promise; return the line."""
    assert not outcome.crashed, f"traceback: {outcome.exception!r}\n{outcome.stderr}"
    assert outcome.exit_code == 2, (outcome.exit_code, outcome.stdout[-2000:], outcome.stderr[-2000:])
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{outcome.stderr}"
    line = lines[0]
    assert line.startswith("blemore: error: "), line
    assert "Traceback" not in outcome.stderr + outcome.stdout
    assert ".tmp" not in line, f"the message names a temporary file: {line}"
    if names:
        assert any(str(n) in line for n in names), f"{line!r} names none of {[str(n) for n in names]}"
    return line


def expect_error(command: str, args: Sequence[Any], *, names: Sequence[Any] = (), protect: Sequence[Path] = (),
                 match: str | None = None) -> str:
    """Run a bad input: one line naming one of ``names``, exit 2, ``protect``-ed files untouched."""
    COUNTS[command] += 1
    before = snapshot(*protect)
    line = one_line(invoke([command, *args] if command not in ("-", "") else list(args)), names)
    if match is not None:
        assert re.search(match, line), f"{line!r} does not match {match!r}"
    check_unchanged(before, protect)
    return line


def expect_clean(command: str, args: Sequence[Any], *, names: Sequence[Any] = (), protect: Sequence[Path] = ()) -> Outcome:
    """Run an input that may be good or bad: success, or the one-line promise; never a traceback."""
    COUNTS[command] += 1
    before = snapshot(*protect)
    outcome = invoke([command, *args])
    assert not outcome.crashed, f"traceback: {outcome.exception!r}"
    if outcome.exit_code != 0:
        one_line(outcome, names)
        check_unchanged(before, protect)
    return outcome


# --------------------------------------------------------------------------- failing file systems


class FailingWrites:
    """Make every write under ``root`` fail with ``code`` (``EROFS``, ``ENOSPC``, ...), as that file system would.

    Patches ``os.open`` (write flags), ``os.mkdir``, ``os.replace``/``os.rename``, ``os.unlink`` and
    the built-in ``open`` in write modes for paths under ``root``; reads pass.
    """

    def __init__(self, monkeypatch: Any, root: Path, code: int) -> None:
        self.root = str(Path(root).resolve())
        self.code = code
        real_open, real_mkdir, real_replace = os.open, os.mkdir, os.replace
        real_rename, real_unlink, real_builtin_open = os.rename, os.unlink, open

        def inside(path: Any) -> bool:
            try:
                return str(Path(os.fsdecode(path)).resolve()).startswith(self.root)
            except (TypeError, ValueError):
                return False

        def fail(path: Any) -> OSError:
            return OSError(self.code, os.strerror(self.code), os.fsdecode(path))

        write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

        def fake_open(path, flags, *args, **kwargs):
            if flags & write_flags and inside(path):
                raise fail(path)
            return real_open(path, flags, *args, **kwargs)

        def fake_mkdir(path, *args, **kwargs):
            if inside(path) and not Path(os.fsdecode(path)).is_dir():
                raise fail(path)
            return real_mkdir(path, *args, **kwargs)

        def fake_move(real):
            def move(src, dst, *args, **kwargs):
                if inside(src) or inside(dst):
                    raise fail(dst)
                return real(src, dst, *args, **kwargs)

            return move

        def fake_unlink(path, *args, **kwargs):
            if inside(path):
                raise fail(path)
            return real_unlink(path, *args, **kwargs)

        def fake_builtin_open(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+") and inside(file):
                raise fail(file)
            return real_builtin_open(file, mode, *args, **kwargs)

        monkeypatch.setattr(os, "open", fake_open)
        monkeypatch.setattr(os, "mkdir", fake_mkdir)
        monkeypatch.setattr(os, "replace", fake_move(real_replace))
        monkeypatch.setattr(os, "rename", fake_move(real_rename))
        monkeypatch.setattr(os, "unlink", fake_unlink)
        monkeypatch.setattr("builtins.open", fake_builtin_open)


#: The failures a file system can give a writer, with the word the message must carry.
WRITE_FAILURES: dict[str, tuple[int, str]] = {
    "read-only": (errno.EROFS, "read-only file system"),
    "full": (errno.ENOSPC, "no space left"),
    "quota": (errno.EDQUOT, "quota exceeded"),
    "permission": (errno.EACCES, "permission denied"),
}


# --------------------------------------------------------------------------- real small file systems


def tmpfs_available() -> str | None:
    """None when a private tmpfs can be mounted here (``unshare --mount``), else the reason why not."""
    probe = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs \"$d\" && umount \"$d\" && rmdir \"$d\""]
    if os.geteuid() != 0:
        probe[1:1] = ["--user", "--map-root-user"]
    try:
        proc = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare is not usable here ({exc})"
    if proc.returncode != 0:
        return f"cannot mount a private tmpfs here: {proc.stderr.strip() or proc.returncode}"
    return None


def unshare_prefix() -> list[str]:
    """The command that runs a program in a private mount namespace (as root inside it)."""
    prefix = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        prefix[1:1] = ["--user", "--map-root-user"]
    return prefix


# --------------------------------------------------------------------------- the record in docs/


_START, _END = "<!-- hostile-counts:start -->", "<!-- hostile-counts:end -->"


def write_counts(doc: Path, counts: Counter[str]) -> None:
    """Replace the table between the markers of ``doc`` by the counts of this run."""
    rows = ["| command | bad inputs tried |", "| --- | ---: |"]
    rows += [f"| `{c}` | {counts[c]} |" for c in sorted(counts)]
    rows.append(f"| **all** | **{sum(counts.values())}** |")
    block = "\n".join([_START, "", *rows, "", _END])
    text = doc.read_text() if doc.exists() else f"{_START}\n{_END}\n"
    if _START not in text:
        text += f"\n{_START}\n{_END}\n"
    head, rest = text.split(_START, 1)
    tail = rest.split(_END, 1)[1] if _END in rest else ""
    doc.write_text(head + block + tail)
