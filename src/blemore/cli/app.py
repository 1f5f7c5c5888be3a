"""The typer app and the one rule every command follows for user errors.

A command module registers itself with ``@app.command()`` and wraps its body in
:func:`user_errors`: a :class:`~blemore.errors.BlemoreError` (or a missing file)
becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import sys
from typing import Iterator

import typer

from blemore.errors import BlemoreError

app = typer.Typer(
    name="blemore",
    help="Blended emotion recognition on BLEMORE: score, decode, tune, submit, extract, benchmark, demo, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str) -> typer.Exit:
    """Print ``blemore: error: <message>`` on stderr and return the exit (code 2) to raise."""
    print(f"blemore: error: {message}", file=sys.stderr)
    return typer.Exit(code=2)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn user errors raised inside the block into one line on stderr and exit code 2."""
    try:
        yield
    except BlemoreError as exc:
        raise fail(str(exc)) from None
    except FileNotFoundError as exc:
        name = exc.filename or str(exc)
        raise fail(f"{name}: no such file or directory") from None
    except IsADirectoryError as exc:
        raise fail(f"{exc.filename}: is a directory, expected a file") from None
    except PermissionError as exc:
        raise fail(f"{exc.filename}: permission denied") from None
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        raise fail(f"{where}no space left on the device: free some space, then run the command again") from None


def _print_version(value: bool) -> None:
    if value:
        from blemore import __version__

        print(f"blemore {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
    ),
) -> None:
    """Blended emotion recognition on BLEMORE: score, decode, tune, submit, extract, benchmark, demo, report."""
