"""The base class shared by every softtorch layer."""

from __future__ import annotations

import inspect
import math

import torch
from torch import nn

from .._core.checks import (
    INTERPOLATIONS,
    check_bool,
    check_bound,
    check_choice,
    check_int,
    check_mode,
    check_nonnegative,
    check_positive,
    check_positive_int,
    check_quantile_level,
    check_softness,
)
from .._core.straight_through import straight_through as _straight_through
from ..methods import check_median_method, check_method_options, get_method

__all__ = ["SoftModule", "REQUIRED"]

#: Learnable softness lives in log space; its value is clamped to this range in the forward pass
#: (straight-through, so the gradient still reaches the parameter beyond the clamp).
_LOG_SOFTNESS_RANGE = (math.log(1e-6), math.log(1e6))

_MISSING = inspect.Parameter.empty
#: A ``defaults`` value marking a layer argument the caller must give (see :class:`SoftModule`).
REQUIRED = _MISSING

#: Function arguments that are per-call tensors, not configuration: ``forward`` takes them as
#: keywords (``layer(x, mask=keep)``), the constructor does not.
CALL_KEYWORDS = ("mask",)

#: Checks of configuration values that do not depend on the input, run when a layer is built
#: (the functions run them again, with the input's size, on every call).
_CONFIG_CHECKS = {
    "mode": check_mode,
    "method": get_method,
    "dim": lambda v: v is None or check_int("dim", v),
    "k": lambda v: check_positive_int("k", v),
    "q": check_quantile_level,
    "length": lambda v: check_positive_int("length", v, low=0),
    "neighbor_radius": lambda v: check_positive_int("neighbor_radius", v),
    "rtol": lambda v: check_nonnegative("rtol", v),
    "atol": lambda v: check_nonnegative("atol", v),
    "epsilon": lambda v: check_nonnegative("epsilon", v),
    "log_prob_eps": lambda v: v is None or check_positive("log_prob_eps", v),
    "interpolation": lambda v: check_choice("interpolation", v, INTERPOLATIONS),
    "min": lambda v: check_bound("min", v),
    "max": lambda v: check_bound("max", v),
}


#: Function arguments that exist only as other names of a function's own arguments, for code
#: written against softtorch 0.1.1 (clamp's ``a``/``b`` for ``min``/``max``): layers take the
#: torch names only.
_FUNCTION_ONLY = frozenset({"a", "b"})


def _needs_a_bound(layer: str, config: dict) -> None:
    if config["min"] is None and config["max"] is None:
        raise ValueError(f"{layer} needs at least one of min or max, got min=None and max=None")


def _method_options(layer: str, config: dict) -> None:
    """``method_options`` and ``ot_kwargs`` checked against the configured method's options, and
    the ``mode`` against the modes it computes."""
    if "method" in config:
        method = get_method(config["method"])
        legacy = {"ot_kwargs": config["ot_kwargs"]} if "ot_kwargs" in config else {}
        check_method_options(method, config.get("method_options"), **legacy)
        if "mode" in config:
            method.check_mode(config["mode"])


def _needs_int_dim(layer: str, config: dict) -> None:
    check_int("dim", config["dim"])


#: Checks that involve more than one configuration value, or a value's meaning for one function,
#: keyed by the function's name.
_FUNCTION_CHECKS = {
    "clamp": _needs_a_bound,
    "index_select": _needs_int_dim,
    "narrow": _needs_int_dim,
    "median": lambda layer, config: check_median_method(config["method"], config["dim"]),
}


def _check_factory(device, dtype) -> None:
    """``device`` and ``dtype`` factory arguments, checked before any tensor is made."""
    if dtype is not None:
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype must be a torch.dtype or None, got {type(dtype).__name__} {dtype!r}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point torch.dtype (the softness is real), got {dtype}")
    if device is not None:
        if isinstance(device, bool) or not isinstance(device, (str, int, torch.device)):
            raise TypeError(
                f"device must be a torch.device, a str, an int or None, got {type(device).__name__} {device!r}"
            )
        try:
            torch.device(device)
        except (RuntimeError, ValueError) as error:
            raise ValueError(
                f"device must name a torch device such as 'cpu' or 'cuda:0', got {device!r} ({error})"
            ) from None


class SoftModule(nn.Module):
    r"""Base class of every softtorch layer: configuration in, one functional call out.

    A subclass names its functional and its tensor inputs; everything else is derived from the
    function's signature: the constructor takes the function's remaining arguments (with the
    same names and defaults, overridable through ``defaults``), validates them when the layer is
    built, stores them, and ``forward`` calls the function with them. The base class also owns
    the softness (a float, a per-channel buffer, or a learnable parameter), the
    ``straight_through`` option and ``extra_repr``.

    Constructor arguments every layer with a ``mode`` accepts besides the function's own:

    Args:
        straight_through (bool): run the hard operator forward and backpropagate the gradient of
            the soft one (``(hard - soft).detach() + soft``). Default: ``False``.
        learnable (bool): register the softness as an ``nn.Parameter`` (stored as its log, so any
            optimizer step keeps it positive; clamped to ``[1e-6, 1e6]`` in the forward pass
            with the gradient passed straight through). Do not apply weight decay to it.
            Default: ``False``.
        device, dtype: factory arguments for a tensor softness (buffer or parameter).

    A tensor ``softness`` gives one temperature per channel: it broadcasts against the input
    (for the sorting family, with the reduced dim set to 1).

    Attributes:
        softness: the positive temperature in use (a float or a tensor).
    """

    #: The functional this layer calls; set by subclasses.
    function = None
    #: Names of the tensor arguments ``forward`` takes, in order.
    inputs: tuple = ("x",)
    #: Layer defaults that differ from the function's.
    defaults: dict = {}
    #: Construction-time checks of config names whose meaning is the layer's own, replacing the
    #: shared ones of the same name (e.g. a ``k`` that may be ``None``).
    config_checks: dict = {}

    #: Whether the function returns ``(values, indices)``; the layer then returns ``values``
    #: unless built with ``return_indices=True``.
    returns_pair: bool = False

    _config_names: tuple = ()
    _call_keywords: tuple = ()
    _repr_names: tuple = ()
    _uses_softness = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.function is None:
            return
        fn = cls.function
        signature = inspect.signature(fn).parameters
        cls._call_keywords = tuple(name for name in CALL_KEYWORDS if name in signature)
        params = [
            p
            for name, p in signature.items()
            if name not in cls.inputs and name not in CALL_KEYWORDS and name not in _FUNCTION_ONLY
        ]
        cls._uses_softness = any(p.name == "softness" for p in params)
        cls._config_names = tuple(p.name for p in params if p.name not in ("softness",))
        cls._repr_names = tuple(p.name for p in params)
        cls._returns_pair = cls.returns_pair or any(p.name == "return_indices" for p in params)
        cls._bool_names = tuple(p.name for p in params if isinstance(p.default, bool) or p.name == "return_indices")
        layer_params = []
        for p in params:
            default = cls.defaults.get(p.name, p.default)
            kind = p.kind if p.kind != inspect.Parameter.POSITIONAL_ONLY else inspect.Parameter.POSITIONAL_OR_KEYWORD
            layer_params.append(p.replace(default=default, kind=kind))
        extra = []
        if cls._uses_softness:
            extra.append("straight_through")
            extra.append("learnable")
        if cls._returns_pair and "return_indices" not in cls._config_names:
            extra.append("return_indices")
        extras = {"straight_through": False, "learnable": False, "return_indices": False}
        for name in extra:
            layer_params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=extras[name]))
        if cls._uses_softness:
            for name in ("device", "dtype"):
                layer_params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None))
        # Required parameters must precede defaulted positional ones in a valid signature.
        cls.__signature__ = inspect.Signature(layer_params)
        cls._layer_signature = inspect.Signature(layer_params)

    def __init__(self, *args, **kwargs):
        super().__init__()
        if type(self).function is None:
            raise TypeError("SoftModule is abstract: subclass it and set `function`")
        try:
            bound = self._layer_signature.bind(*args, **kwargs)
        except TypeError as error:
            if "dim" in str(error) and self.defaults.get("dim", None) is REQUIRED:
                raise TypeError(
                    f"{type(self).__name__}() needs dim: the function's default dim=None reduces all "
                    "elements together, mixing the rows of a batch; pass dim=-1 for the last axis, "
                    "or dim=None explicitly to use every element"
                ) from None
            raise
        bound.apply_defaults()
        values = dict(bound.arguments)
        for name, value in values.items():
            if value is _MISSING:
                raise TypeError(f"{type(self).__name__}() missing required argument: {name!r}")
        device, dtype = values.pop("device", None), values.pop("dtype", None)
        _check_factory(device, dtype)
        for name in ("straight_through", "learnable", "return_indices", *self._bool_names):
            if name in values:
                check_bool(name, values[name])
        self.straight_through = values.pop("straight_through", False)
        self.learnable = values.pop("learnable", False)
        self.return_indices = values.pop("return_indices", False) if self._returns_pair else False
        if "return_indices" in self._config_names:
            values["return_indices"] = self.return_indices
        self._check_config(values)
        if self._uses_softness:
            self._init_softness(values.pop("softness"), device, dtype)
        self.config = values

    def _check_config(self, values: dict) -> None:
        """The build-time checks of configuration ``values``: each name's own check (the layer's
        ``config_checks`` before the shared ones), those involving several names, method options."""
        checks = {**_CONFIG_CHECKS, **self.config_checks}
        for name, value in values.items():
            if name in checks:
                checks[name](value)
        check_config = _FUNCTION_CHECKS.get(type(self).function.__name__)
        if check_config is not None:
            check_config(type(self).__name__, values)
        _method_options(type(self).__name__, values)

    # -- configuration as attributes ----------------------------------------------------------
    def __getattr__(self, name):
        # Configuration values read like a torch layer's attributes: ``SoftTopK(k=3).k == 3``.
        config = self.__dict__.get("config")
        if config is not None and name in config:
            return config[name]
        return super().__getattr__(name)

    def __setattr__(self, name, value):
        config = self.__dict__.get("config")
        if config is not None and name in config:
            # The same checks as when the layer is built, then the change takes effect.
            if name in self._bool_names:
                check_bool(name, value)
            self._check_config({**config, name: value})
            config[name] = value
            if name in self.__dict__:  # return_indices is also kept as a plain attribute
                self.__dict__[name] = value
            return
        super().__setattr__(name, value)

    # -- softness ---------------------------------------------------------------------------
    def _init_softness(self, softness, device, dtype):
        softness = check_softness(softness)
        factory = {"device": device, "dtype": dtype or torch.get_default_dtype()}
        if isinstance(softness, torch.Tensor):
            initial = softness.detach().to(**{k: v for k, v in factory.items() if v is not None}).clone()
        else:
            initial = torch.tensor(softness, **factory) if (self.learnable or device or dtype) else softness
        self._initial_softness = initial
        if self.learnable:
            self.log_softness = nn.Parameter(torch.log(initial.clone()))
        elif isinstance(initial, torch.Tensor):
            self.register_buffer("softness_value", initial.clone())
        else:
            self._softness_float = initial

    def reset_parameters(self) -> None:
        """Restore the softness to the value the layer was built with."""
        if not self._uses_softness:
            return
        with torch.no_grad():
            if self.learnable:
                self.log_softness.copy_(torch.log(self._initial_softness.to(self.log_softness)))
            elif hasattr(self, "softness_value"):
                self.softness_value.copy_(self._initial_softness.to(self.softness_value))

    @property
    def softness(self):
        """The positive temperature in use: a float, a buffer, or ``exp`` of the learnable log."""
        if not self._uses_softness:
            return None
        if self.learnable:
            raw = self.log_softness
            # The clamped value exactly, with the gradient of raw passed straight through; a raw
            # value far outside the range (or infinite, after a wild optimizer step) must neither
            # round the result away from the clamp bound nor turn it into inf - inf = NaN.
            through = raw - raw.detach()
            through = torch.where(torch.isfinite(raw), through, torch.zeros_like(through))
            return torch.exp(raw.detach().clamp(*_LOG_SOFTNESS_RANGE) + through)
        if hasattr(self, "softness_value"):
            return self.softness_value
        return self._softness_float

    def forward(self, *inputs, **call_kwargs):
        if len(inputs) != len(self.inputs):
            names = ", ".join(self.inputs)
            raise TypeError(f"{type(self).__name__}.forward takes ({names}), got {len(inputs)} tensors")
        unknown = sorted(set(call_kwargs) - set(self._call_keywords))
        if unknown:
            allowed = ", ".join(self._call_keywords) or "none"
            raise TypeError(
                f"{type(self).__name__}.forward got unexpected keyword(s) {', '.join(unknown)}; "
                f"per-call keywords it takes: {allowed}"
            )
        kwargs = {**self.config, **call_kwargs}
        fn = type(self).function
        if self._uses_softness:
            kwargs["softness"] = self.softness
        if self.straight_through and kwargs.get("mode", "hard") != "hard":
            mode = kwargs.pop("mode")
            out = _straight_through(fn, *inputs, mode=mode, **kwargs)
        else:
            out = fn(*inputs, **kwargs)
        if self._returns_pair and not self.return_indices and isinstance(out, tuple):
            return out[0]
        return out

    def _softness_repr(self) -> str:
        softness = self.softness
        if not isinstance(softness, torch.Tensor):
            return f"{softness:.4g}"
        values = softness.detach()
        if values.numel() == 1:
            return f"{values.item():.4g}"
        if values.numel() <= 4:
            return "[" + ", ".join(f"{v:.4g}" for v in values.reshape(-1).tolist()) + "]"
        return f"<tensor of shape {tuple(values.shape)}>"

    def extra_repr(self) -> str:
        """The configuration that differs from the layer's defaults, as torch's layers show it."""
        defaults = {name: p.default for name, p in self._layer_signature.parameters.items()}
        parts = []
        for name in self._repr_names:
            if name == "softness":
                if self.learnable or isinstance(self.softness, torch.Tensor) or self.softness != defaults[name]:
                    parts.append(f"softness={self._softness_repr()}")
                continue
            value = self.config[name]
            default = defaults.get(name, _MISSING)
            if default is _MISSING or not _same_config(value, default):
                parts.append(f"{name}={value!r}")
        for name in ("straight_through", "learnable", "return_indices"):
            if name in defaults and name not in self.config and getattr(self, name) != defaults[name]:
                parts.append(f"{name}={getattr(self, name)!r}")
        return ", ".join(parts)


def _same_config(value, default) -> bool:
    """Whether a configuration value equals its default (tensors and floats compared by value)."""
    if isinstance(value, torch.Tensor) or isinstance(default, torch.Tensor):
        return False
    return type(value) is type(default) and value == default
