"""Full and read-only disks for tests: a small tmpfs in a private mount namespace.

``unshare --user --map-root-user --mount`` gives a shell its own mounts, so a test can
mount a 64 KB tmpfs, fill it, remount it read-only or larger, and run ``blemore`` on it
without privileges on the host. The mount disappears with the shell, so a session copies
what it wants to look at afterwards into a host folder (:meth:`TmpfsSession.snapshot`).

>>> session = TmpfsSession(tmp_path, size="64k")                   # doctest: +SKIP
>>> run = session.blemore("extract", clips, "-o", session.mount / "f")  # doctest: +SKIP
>>> session.snapshot("f", "after")                                # doctest: +SKIP
>>> results = session.run()                                       # doctest: +SKIP
>>> results[run].returncode, (session.saved / "after").exists()    # doctest: +SKIP
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _can_mount() -> bool:
    if shutil.which("unshare") is None or not sys.platform.startswith("linux"):
        return False
    probe = 'd=$(mktemp -d) && mount -t tmpfs -o size=16k tmpfs "$d" && umount "$d"; rc=$?; rmdir "$d"; exit $rc'
    try:
        done = subprocess.run(["unshare", "-rm", "sh", "-c", probe], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


needs_tmpfs = pytest.mark.skipif(not _can_mount(),
                                 reason="cannot mount a tmpfs in a user namespace here (unshare)")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class TmpfsSession:
    """A script of steps run in one private mount namespace with a tmpfs at :attr:`mount`."""

    def __init__(self, root: Path, *, size: str = "64k"):
        self.mount = root / "mnt"
        self.saved = root / "saved"
        self.mount.mkdir(parents=True)
        self.saved.mkdir(parents=True)
        self._lines = ["set -eu", f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(self.mount))}"]
        self._runs = 0

    def blemore(self, *args: object) -> int:
        """Add a step running the command line; returns its number (an index into :meth:`run`'s result)."""
        k = self._runs
        self._runs += 1
        cli = [sys.executable, "-c", "from blemore.cli import main; main()", *map(str, args)]
        out = self.saved / f".run{k}"
        self._lines.append(f"rc=0; {shlex.join(cli)} > {out}.out 2> {out}.err || rc=$?; echo $rc > {out}.rc")
        return k

    def remount(self, options: str) -> None:
        """Add a step remounting the tmpfs (``ro``, ``rw``, ``size=1m`` ...)."""
        self._lines.append(f"mount -o remount,{options} {shlex.quote(str(self.mount))}")

    def fill(self) -> None:
        """Add a step filling the tmpfs to the last byte (with a file named ``.filler``)."""
        filler = shlex.quote(str(self.mount / ".filler"))
        self._lines.append(f"dd if=/dev/zero of={filler} bs=1k 2> /dev/null || true")

    def snapshot(self, relative: str, name: str) -> None:
        """Add a step copying ``mount/relative`` to ``saved/name`` (files, modes and times kept)."""
        src, dst = self.mount / relative, self.saved / name
        self._lines.append(f"cp -a {shlex.quote(str(src))} {shlex.quote(str(dst))}")

    def run(self, *, timeout: float = 300) -> list[Result]:
        """Run the steps; the results of the :meth:`blemore` steps, in order."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
        done = subprocess.run(["unshare", "-rm", "sh", "-c", "\n".join(self._lines)], capture_output=True,
                              text=True, timeout=timeout, env=env)
        assert done.returncode == 0, done.stderr
        results = []
        for k in range(self._runs):
            out = self.saved / f".run{k}"
            results.append(Result(int(Path(f"{out}.rc").read_text()), Path(f"{out}.out").read_text(),
                                  Path(f"{out}.err").read_text()))
        return results
