"""The functional core: one module per operator family."""

import inspect as _inspect

from .._core.precision import autocast_neutral as _autocast_neutral
from . import comparison, elementwise, logic, losses, reduction, selection, sorting
from .comparison import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .logic import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .reduction import *  # noqa: F401,F403
from .selection import *  # noqa: F401,F403
from .sorting import *  # noqa: F401,F403

__all__ = [
    *elementwise.__all__,
    *comparison.__all__,
    *logic.__all__,
    *selection.__all__,
    *reduction.__all__,
    *sorting.__all__,
    *losses.__all__,
]

# Every public function runs with autocast off (its own precision rule under torch.autocast too,
# see autocast_neutral), in its module as well, where the layers look it up.
for _module in (comparison, elementwise, logic, losses, reduction, selection, sorting):
    for _name in _module.__all__:
        _fn = getattr(_module, _name)
        if _inspect.isfunction(_fn):
            _fn = _autocast_neutral(_fn)
            setattr(_module, _name, _fn)
            globals()[_name] = _fn
del _module, _name, _fn
