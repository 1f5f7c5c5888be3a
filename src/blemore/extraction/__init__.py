"""From clip files to frame-level features: the engine (:mod:`~blemore.extraction.engine`) and its
Ray runner (:mod:`~blemore.extraction.ray`)."""
