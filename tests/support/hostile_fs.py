"""Run commands against real small file systems: a read-only or a full tmpfs for each case.

Run inside a private mount namespace (``unshare --mount``, see
:func:`tests.support.hostile.unshare_prefix`), so that the mounts vanish with the process:

    python -m tests.support.hostile_fs CASES.json RESULTS.json

Each case: ``{"name", "mode": "read-only" | "full", "args": [...]}``; the string ``{mnt}`` in an
argument is the mount point. The mount holds earlier outputs (``old.zip``, ``old.json``,
``notes.txt``, a folder ``old/``) before the command runs; for ``full`` a filler file takes the
rest of the space. Each result: the exit code, stderr, an escaped exception, and the files
that changed, vanished or were left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

EARLIER = {"old.zip": b"an earlier submission", "old.json": b'{"earlier": 1}\n', "notes.txt": b"the user's notes\n",
           "old/results.csv": b"a,b\n1,2\n"}


def _mount(point: Path, size_kb: int) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(point)], check=True)


def _fill(point: Path) -> None:
    """Take every free byte with a filler file (ENOSPC ends it)."""
    fd = os.open(point / "filler.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    chunk = b"\0" * 4096
    try:
        while True:
            os.write(fd, chunk)
    except OSError:
        pass
    try:
        while True:
            os.write(fd, b"\0")
    except OSError:
        pass
    finally:
        os.close(fd)


def _files(point: Path) -> dict[str, bytes]:
    return {str(p.relative_to(point)): p.read_bytes() for p in sorted(point.rglob("*")) if p.is_file()}


def run_case(case: dict, base: Path) -> dict:
    from blemore.io import is_temporary
    from tests.support.hostile import invoke

    point = Path(tempfile.mkdtemp(dir=base))
    _mount(point, case.get("size_kb", 256))
    try:
        for name, data in EARLIER.items():
            (point / name).parent.mkdir(parents=True, exist_ok=True)
            (point / name).write_bytes(data)
        if case["mode"] == "read-only":
            subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
        else:
            _fill(point)
        before = _files(point)
        outcome = invoke([a.replace("{mnt}", str(point)) for a in case["args"]])
        after = _files(point)
        return {
            "name": case["name"],
            "mount": str(point),
            "exit_code": outcome.exit_code,
            "stderr": outcome.stderr,
            "stdout": outcome.stdout[-2000:],
            "exception": repr(outcome.exception) if outcome.crashed else None,
            "changed": sorted(k for k in before if after.get(k) != before[k]),
            "left": sorted(k for k in after if k not in before and is_temporary(k)),
        }
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)
        point.rmdir()


def main(cases_path: str, results_path: str) -> None:
    cases = json.loads(Path(cases_path).read_text())
    base = Path(tempfile.mkdtemp(prefix="blemore-tmpfs-"))
    results = [run_case(case, base) for case in cases]
    base.rmdir()
    Path(results_path).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:3])
