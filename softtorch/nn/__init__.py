"""Layers: one configurable ``torch.nn.Module`` per softtorch function."""

from . import comparison, elementwise, logic, losses, reduction, selection, sorting
from .base import SoftModule
from .comparison import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .logic import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .reduction import *  # noqa: F401,F403
from .selection import *  # noqa: F401,F403
from .sorting import *  # noqa: F401,F403

__all__ = [
    "SoftModule",
    *elementwise.__all__,
    *comparison.__all__,
    *logic.__all__,
    *selection.__all__,
    *reduction.__all__,
    *sorting.__all__,
    *losses.__all__,
]
