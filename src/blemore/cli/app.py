"""The typer app and the one rule every command follows for user errors.

A command module registers itself with ``@app.command()`` and wraps its body in
:func:`user_errors`. Whatever a user can cause becomes one line on stderr,
``blemore: error: <what> : <problem>``, and exit code 2, never a traceback:

- a :class:`~blemore.errors.BlemoreError` (bad input, named by the library);
- any ``OSError`` about a file (missing, a folder, permission denied, read-only or full
  file system, quota, name too long, ...): the line names the user's path, never the
  temporary name of an atomic write (:func:`blemore.io.user_path`);
- running out of memory.

Command-line mistakes (an unknown option, a value of the wrong type, a missing argument)
are one line too, with exit code 2. Anything else is a bug in blemore and keeps its
traceback (exit code 1), so that it can be reported and fixed.

Every command has ``-h`` beside ``--help``; flags show no value type in the help.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from blemore.errors import BlemoreError
from blemore.io import user_path

__all__ = ["app", "describe_os_error", "fail", "user_errors"]

# The click that typer uses (its own copy in recent typer, the click package before).
_click_exceptions = importlib.import_module(typer.BadParameter.__module__)
_ClickException: type[Exception] = _click_exceptions.ClickException
_NoArgsIsHelp: tuple[type[Exception], ...] = tuple(
    c for c in (getattr(_click_exceptions, "NoArgsIsHelpError", None),) if c is not None
)

#: What each ``errno`` means for the user, and what to do.
_OS_PROBLEMS: dict[int, str] = {
    errno.ENOENT: "no such file or directory",
    errno.EISDIR: "is a directory, expected a file",
    errno.ENOTDIR: "a part of this path is a file, not a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system: write the output somewhere else",
    errno.ENOSPC: "no space left on the device: free some space, then run the command again",
    errno.EDQUOT: "disk quota exceeded: free some space, then run the command again",
    errno.ENAMETOOLONG: "file name too long",
    errno.EEXIST: "already exists",
    errno.ENOTEMPTY: "directory not empty",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) or use fewer workers",
    errno.ENFILE: "too many open files on the system",
    errno.EIO: "input/output error (a failing disk or network file system?)",
    errno.EFBIG: "file too large for this file system",
    errno.ETXTBSY: "file busy",
    errno.EXDEV: "cannot move a file across file systems",
}


def describe_os_error(exc: OSError) -> str:
    """One line for an ``OSError``: the user's path (never a temporary name) and the problem.

    >>> describe_os_error(PermissionError(13, "Permission denied", "out/x.zip"))
    'out/x.zip: permission denied'
    """
    problem = _OS_PROBLEMS.get(exc.errno) if exc.errno is not None else None
    if problem is None:
        problem = (exc.strerror or str(exc) or type(exc).__name__).strip().rstrip(".")
        problem = problem[:1].lower() + problem[1:]
    paths = [str(user_path(p)) for p in (exc.filename, exc.filename2) if p not in (None, "")]
    paths = list(dict.fromkeys(paths))
    return f"{' -> '.join(paths)}: {problem}" if paths else problem


def fail(message: str) -> typer.Exit:
    """Print ``blemore: error: <message>`` on stderr and return the exit (code 2) to raise."""
    one_line = " ".join(str(message).split())
    print(f"blemore: error: {one_line}", file=sys.stderr)
    return typer.Exit(code=2)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn user errors raised inside the block into one line on stderr and exit code 2."""
    try:
        yield
    except BlemoreError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        if exc.errno == errno.EPIPE:  # the reader of stdout went away (`| head`): end quietly, as typer does
            raise
        raise fail(describe_os_error(exc)) from None
    except MemoryError:
        raise fail("out of memory: the input is larger than this machine can hold") from None


def _hide_flag_types(params: Sequence[Any]) -> None:
    """Flags take no value: show no ``<bool>`` for them in the help."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


class _FlagsWithoutType:
    """Mixed into click's command classes: the help lists flags (``--help`` too) without a value type."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _hide_flag_types(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            _hide_flag_types([option])
        return option


class _Command(_FlagsWithoutType, TyperCommand):
    """A command whose help lists flags without a value type."""


class _Group(_FlagsWithoutType, TyperGroup):
    """The ``blemore`` group: one-line usage errors, flags without a value type."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Abort:
            print("blemore: error: aborted", file=sys.stderr)
            sys.exit(1)
        except _NoArgsIsHelp as exc:
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        except _ClickException as exc:
            sys.exit(_usage_error(exc))
        sys.exit(code if isinstance(code, int) else 0)


def _usage_error(exc: Any) -> int:
    """Print a command-line mistake as one line; return its exit code."""
    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    hint = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
    message = " ".join(exc.format_message().split())
    print(f"blemore: error: {where}{message}{hint}", file=sys.stderr)
    return int(exc.exit_code)


class _App(typer.Typer):
    """``typer.Typer`` whose commands list flags without a value type."""

    def command(self, *args: Any, cls: Any = None, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return super().command(*args, cls=cls or _Command, **kwargs)


app = _App(
    name="blemore",
    help="Blended emotion recognition on BLEMORE: score, decode, tune, submit, extract, benchmark, demo, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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
