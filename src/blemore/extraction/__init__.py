"""From clip files to frame-level features.

- :mod:`~blemore.extraction.engine`: the steps every runner shares (build the encoders, plan
  the work, decode a clip, run a batch, the sink and the writer thread);
- :mod:`~blemore.extraction.local`: :func:`extract` on this machine (decoding threads or
  processes, encoding in the main thread, writing in the background);
- :mod:`~blemore.extraction.ray`: :func:`~blemore.extraction.ray.extract_on_ray` on a Ray
  cluster (imported only when asked for).
"""

from blemore.extraction.local import extract

__all__ = ["extract"]
