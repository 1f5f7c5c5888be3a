"""``python -m blemore``: the same as the ``blemore`` command."""

from blemore.cli import main

if __name__ == "__main__":  # pragma: no branch
    main()
