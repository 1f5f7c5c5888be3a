"""Command-line interface: ``blemore <command>``.

Each command lives in its own module below and registers itself on :data:`app`;
this module imports them all. Commands are thin: they parse options, call the
library and print.
"""

from __future__ import annotations

import importlib

from blemore.cli.app import app

# Command modules, each owning its commands. Missing ones (work in progress) are skipped.
_COMMAND_MODULES = ("core", "extract", "features", "benchmark", "demo", "report")
for _name in _COMMAND_MODULES:
    try:
        importlib.import_module(f"blemore.cli.{_name}")
    except ModuleNotFoundError as _exc:  # pragma: no cover - only while a module does not exist yet
        if _exc.name != f"blemore.cli.{_name}":
            raise


def main() -> None:
    app()


__all__ = ["app", "main"]
