"""Shared fixtures for the softtorch test suite.

* ``--device`` (default ``cpu``) selects where tensors live; ``--device cuda`` runs the suite on a
  GPU and skips device-dependent tests when none is present. Exposed as the ``device`` fixture.
* ``dtype`` is parametrized over float32 and float64; ``tol`` is the matching entry of
  :data:`TOLERANCES` (keyword arguments for :func:`torch.testing.assert_close`).
* Hypothesis runs the ``softtorch`` profile (30 examples, no deadline); ``pytest -m full`` (or
  ``HYPOTHESIS_PROFILE=softtorch-full``) switches to the ``softtorch-full`` profile with more examples.
* ``raises_before_work`` checks that a call raises before it runs any tensor computation.
"""

from __future__ import annotations

import os
import re

import pytest
import torch
from hypothesis import HealthCheck, settings
from torch.utils._python_dispatch import TorchDispatchMode

settings.register_profile(
    "softtorch",
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "softtorch-full",
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "softtorch"))

#: Tolerances for :func:`torch.testing.assert_close`, per floating dtype.
TOLERANCES = {
    torch.float16: {"rtol": 1e-3, "atol": 1e-3},
    torch.bfloat16: {"rtol": 1.6e-2, "atol": 1e-2},
    torch.float32: {"rtol": 1.3e-6, "atol": 1e-6},
    torch.float64: {"rtol": 1e-12, "atol": 1e-13},
}

#: The dtypes every parity test runs over.
DTYPES = (torch.float32, torch.float64)


def pytest_addoption(parser):
    group = parser.getgroup("softtorch")
    group.addoption(
        "--device",
        action="store",
        default="cpu",
        help="torch device to run the softtorch tests on (cpu, cuda, cuda:1, ...). Default: cpu.",
    )


def pytest_configure(config):
    # `-m full` asks for the exhaustive sweeps: give hypothesis more examples too.
    markexpr = getattr(config.option, "markexpr", "") or ""
    if re.search(r"(?<!not )\bfull\b", markexpr) and "HYPOTHESIS_PROFILE" not in os.environ:
        settings.load_profile("softtorch-full")


@pytest.fixture(scope="session")
def device(request) -> torch.device:
    """The device selected with ``--device`` (tests skip when it is not available)."""
    name = request.config.getoption("--device", default="cpu") or "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.skip(f"--device {name} requested but CUDA is not available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        pytest.skip(f"--device {name} requested but MPS is not available")
    return dev


@pytest.fixture(scope="session", params=DTYPES, ids=lambda d: str(d).replace("torch.", ""))
def dtype(request) -> torch.dtype:
    """float32 and float64."""
    return request.param


@pytest.fixture(scope="session")
def tol(dtype) -> dict:
    """``assert_close`` tolerances for the ``dtype`` fixture."""
    return dict(TOLERANCES[dtype])


class _OpRecorder(TorchDispatchMode):
    """Records every ATen op dispatched while active."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func)
        return func(*args, **(kwargs or {}))


def _raises_before_work(exc, match, fn, *args, **kwargs):
    """Assert ``fn(*args, **kwargs)`` raises ``exc`` matching ``match`` before computing anything.

    Views (reshape of a contiguous tensor, movedim) are metadata only and allowed; any op that
    computes or allocates (arithmetic, copies, dtype casts) counts as work.
    """
    recorder = _OpRecorder()
    with pytest.raises(exc, match=match) as info:
        with recorder:
            fn(*args, **kwargs)
    work = [str(op) for op in recorder.ops if not getattr(op, "is_view", False)]
    assert not work, f"{getattr(fn, '__name__', fn)} ran {work} before raising {exc.__name__}"
    return info


@pytest.fixture(scope="session")
def raises_before_work():
    """``raises_before_work(exc, match, fn, *args, **kwargs)``; see :func:`_raises_before_work`."""
    return _raises_before_work


_SAME_SIZE_INT = {
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
    torch.float32: torch.int32,
    torch.float64: torch.int64,
}


def _assert_bitwise_equal(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Same dtype, shape and bits (so ``-0.0`` and ``0.0`` differ, unlike ``torch.equal``)."""
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    as_int = _SAME_SIZE_INT.get(actual.dtype)
    if as_int is None:
        assert torch.equal(actual, expected), f"values differ:\n{actual}\n!=\n{expected}"
        return
    a, e = actual.detach().contiguous().view(as_int), expected.detach().contiguous().view(as_int)
    if not torch.equal(a, e):
        bad = (a != e).nonzero()
        first = tuple(bad[0].tolist())
        raise AssertionError(
            f"{len(bad)} of {a.numel()} elements differ in their bits; first at index {first}: "
            f"got {actual[first].item()!r}, expected {expected[first].item()!r}"
        )


@pytest.fixture(scope="session")
def bitwise_equal():
    """``bitwise_equal(actual, expected)``: same dtype, shape and bit pattern."""
    return _assert_bitwise_equal
