"""blemore: recognise blended emotions and their relative salience (BLEMORE).

The pure core (no torch, no I/O beyond what its functions are given):

- :mod:`blemore.labels` - emotions, the 36 valid labels, clip-name parsing;
- :mod:`blemore.metrics` - the challenge's presence / salience accuracy;
- :mod:`blemore.decoding` - the baseline's alpha/beta rule, threshold search, structured decoding;
- :mod:`blemore.submission` - reading, validating and writing predictions.
"""

from blemore.errors import BlemoreError
from blemore.labels import EMOTIONS, LABEL_NAMES, VALID_LABELS, parse_clip_name

__version__ = "0.1.0"

__all__ = ["BlemoreError", "EMOTIONS", "LABEL_NAMES", "VALID_LABELS", "parse_clip_name", "__version__"]
