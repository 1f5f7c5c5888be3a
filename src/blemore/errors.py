"""The one exception type for problems a user can fix.

Every layer raises :class:`BlemoreError` for bad input (a malformed clip name, a
broken submission, features with NaN, ...). The CLI turns it into one line on
stderr and exit code 2; library users catch it like any ``ValueError``.
"""

from __future__ import annotations

__all__ = ["BlemoreError"]


class BlemoreError(ValueError):
    """A problem with the user's input, stated so that they can fix it.

    The message names the file or clip and what is wrong, e.g.
    ``"submission.json: clip 'A102_ang_int1_ver1': unknown emotion 'angry'"``.
    """
