"""What writing features into stores did: :class:`ExtractionSummary` (counts, failures, where the time went),
shared by extraction and the importers, and the software versions recorded beside features."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ExtractionSummary", "Failure", "software_versions"]


@dataclass(frozen=True)
class Failure:
    encoder: str
    clip: str
    reason: str


@dataclass
class ExtractionSummary:
    """What :func:`extract` did: counts are (clip, encoder) pairs."""

    out: Path
    encoders: list[str]
    clips: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    media_seconds: float = 0.0
    encode_seconds: dict[str, float] = field(default_factory=dict)
    #: main thread blocked waiting for decoded clips (> a few %: add decoding workers)
    wait_decode_seconds: float = 0.0
    #: main thread blocked because the writer's queue was full (> a few %: the disk is the limit)
    wait_write_seconds: float = 0.0
    #: writer thread busy storing features (runs beside encoding)
    write_seconds: float = 0.0

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else 0.0

    @property
    def realtime_factor(self) -> float:
        """Seconds of media processed per second of wall time (> 1: faster than real time)."""
        return self.media_seconds / self.seconds if self.seconds > 0 else 0.0

    def format(self, *, max_failures: int = 20) -> str:
        """A short human-readable summary, failures with their reasons."""
        lines = [
            f"extracted {', '.join(self.encoders)} -> {self.out}: done {self.done}, skipped {self.skipped} "
            f"(already there), failed {self.failed}; {self.clips} clips in {self.seconds:.1f} s "
            f"({self.clips_per_second:.2f} clips/s"
            + (f", {self.realtime_factor:.1f}x real time)" if self.media_seconds else ")")
        ]
        if self.clips and self.seconds >= 1.0:
            lines.append("  " + self.time_breakdown())
        for f in self.failures[:max_failures]:
            lines.append(f"  failed: {f.encoder} {f.clip}: {f.reason}")
        if len(self.failures) > max_failures:
            lines.append(f"  ... and {len(self.failures) - max_failures} more (see each encoder's index.csv)")
        return "\n".join(lines)

    def time_breakdown(self) -> str:
        """Where the main thread's time went, and what to change when one part dominates.

        >>> ExtractionSummary(out=Path("f"), encoders=["clip"], clips=8, seconds=10.0,
        ...                   encode_seconds={"clip": 4.0}, wait_decode_seconds=5.0).time_breakdown()
        'time: encoding 40%, waiting for decoding 50%, waiting for the writer 0%, other 10% (decoding is the limit: more --workers)'
        """
        encode = sum(self.encode_seconds.values())
        parts = {"encoding": encode, "waiting for decoding": self.wait_decode_seconds,
                 "waiting for the writer": self.wait_write_seconds}
        other = max(0.0, self.seconds - sum(parts.values()))
        share = {k: v / self.seconds for k, v in parts.items()}
        text = "time: " + ", ".join(f"{k} {v:.0%}" for k, v in share.items()) + f", other {other / self.seconds:.0%}"
        if share["waiting for decoding"] > 0.25:
            text += " (decoding is the limit: more --workers)"
        elif share["waiting for the writer"] > 0.25:
            text += " (writing is the limit: a faster disk for --out)"
        return text


def software_versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape features (saved beside them)."""
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for dist in ("blemore", "numpy", "av", "soxr", "opensmile", "mediapipe", "torch", "transformers"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out
