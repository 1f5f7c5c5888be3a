"""What writing features did (blemore.features.summary)."""

from __future__ import annotations

from pathlib import Path

from blemore.features.summary import ExtractionSummary, Failure, software_versions


def test_time_breakdown_names_the_limit():
    s = ExtractionSummary(out=None, encoders=["x"], clips=4, seconds=10.0, encode_seconds={"x": 1.0},
                          wait_write_seconds=8.0)
    assert s.time_breakdown().endswith("(writing is the limit: a faster disk for --out)")
    s = ExtractionSummary(out=None, encoders=["x"], clips=4, seconds=10.0, encode_seconds={"x": 9.0})
    assert "limit" not in s.time_breakdown() and "encoding 90%" in s.time_breakdown()
    assert "time: " in s.format()


def test_format_lists_the_failures_up_to_a_limit():
    failures = [Failure("opensmile", f"c{k}", "no audio track") for k in range(3)]
    s = ExtractionSummary(out=Path("f"), encoders=["opensmile"], clips=3, failed=3, failures=failures, seconds=0.5)
    lines = s.format(max_failures=2).splitlines()
    assert lines[0].startswith("extracted opensmile -> f: done 0, skipped 0 (already there), failed 3")
    assert lines[1:] == ["  failed: opensmile c0: no audio track", "  failed: opensmile c1: no audio track",
                         "  ... and 1 more (see each encoder's index.csv)"]


def test_software_versions_name_python_and_numpy():
    versions = software_versions()
    assert {"python", "numpy"} <= set(versions)
