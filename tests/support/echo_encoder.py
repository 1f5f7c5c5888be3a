"""An exact, cheap video 'encoder' for the extraction tests: each frame's mean colour."""

from __future__ import annotations

import numpy as np

from blemore.encoders.base import Encoder
from blemore.media.decoder import VideoSpec


class FramesEcho(Encoder):
    """A video 'encoder' whose features are the frames' mean colour per frame (exact, cheap)."""

    name = "echo"
    modality = "video"
    dim = 3
    batch_size = 2
    video = VideoSpec(fps=10.0, short_side=48)

    def output_fps(self, input_rate: float) -> float:
        return input_rate

    def encode(self, inputs):
        return [np.asarray(f, dtype=np.float32).mean(axis=(1, 2)) for f in inputs]
