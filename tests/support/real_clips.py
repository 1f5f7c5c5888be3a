"""Where the real BLEMORE clip list is: ``shared/`` beside the checkout (as in CI), or ``$BLEMORE_SHARED``.

Tests that shape their data like the real set use :data:`CLIPS_CSV` and skip with
:data:`needs_real_clips` where the list is not on the machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _find() -> Path:
    candidates = []
    if os.environ.get("BLEMORE_SHARED"):
        candidates.append(Path(os.environ["BLEMORE_SHARED"]) / "data" / "blemore_clips.csv")
    candidates.append(Path(__file__).resolve().parents[3] / "shared" / "data" / "blemore_clips.csv")
    candidates.append(Path("/work/shared/data/blemore_clips.csv"))
    return next((c for c in candidates if c.exists()), candidates[0])


CLIPS_CSV = _find()
needs_real_clips = pytest.mark.skipif(
    not CLIPS_CSV.exists(), reason="the real BLEMORE clip list (shared/data/blemore_clips.csv) is not on this machine"
)
