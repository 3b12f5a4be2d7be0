"""softtorch: soft, differentiable drop-in replacements for PyTorch's discrete operations.

Every operator is a function here (``softtorch.sort``) and a layer in :mod:`softtorch.nn`
(``softtorch.nn.SoftSort``).
"""

from . import functional, nn, schedules  # noqa: F401
from ._core.straight_through import grad_replace, st
from .functional import *  # noqa: F401,F403

__version__ = "0.1.0"

__all__ = ["st", "grad_replace", *functional.__all__]
