"""The paper's classifier heads and the soft-label loss, by name.

Three heads, all ending in a softmax over the six emotions:

=========  ==========================================
name       architecture
=========  ==========================================
linear     ``Linear(D, 6)``
mlp256     ``Linear(D, 256) -> ReLU -> Linear(256, 6)``
mlp512     ``Linear(D, 512) -> ReLU -> Linear(512, 6)``
=========  ==========================================

Names are matched loosely (``MLP_512``, ``mlp-512`` and ``mlp512`` are the same).
The loss is ``KL(target || prediction)`` averaged over the batch (PyTorch's
``kl_div(..., reduction="batchmean")``).

>>> hidden_size("MLP_256")
256
>>> canonical_model_name("Linear")
'linear'
"""

from __future__ import annotations

import re

from blemore.errors import BlemoreError

__all__ = ["MODELS", "canonical_model_name", "hidden_size", "parse_model_list"]

#: Head name -> hidden width (0: no hidden layer).
MODELS: dict[str, int] = {"linear": 0, "mlp256": 256, "mlp512": 512}


def canonical_model_name(name: str) -> str:
    """``"linear"``, ``"mlp256"`` or ``"mlp512"`` for any spelling; BlemoreError otherwise."""
    key = re.sub(r"[\s_\-]", "", str(name).lower())
    if key not in MODELS:
        raise BlemoreError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")
    return key


def hidden_size(name: str) -> int:
    """Hidden width of the head called ``name`` (0 for the linear head)."""
    return MODELS[canonical_model_name(name)]


def parse_model_list(spec: str | list[str]) -> list[str]:
    """``"linear,mlp512"`` (or a list of such strings) -> canonical names, in order, unique."""
    items = spec if isinstance(spec, list) else [spec]
    names: list[str] = []
    for item in items:
        for part in str(item).split(","):
            if part.strip():
                n = canonical_model_name(part.strip())
                if n not in names:
                    names.append(n)
    if not names:
        raise BlemoreError(f"no model named; expected some of {', '.join(MODELS)}")
    return names
