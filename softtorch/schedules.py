r"""Softness schedules for the softtorch layers of a model, and how far a model is from hard.

:class:`SoftnessScheduler` anneals the softness of every softtorch layer in a model, in the
style of :mod:`torch.optim.lr_scheduler`: build it once, call :meth:`~SoftnessScheduler.step`
once per optimizer step (or epoch), save and restore it with ``state_dict()``. With
:math:`t = \min(\text{step} / \text{total\_steps}, 1)` and the final factor :math:`r` (the end
softness over the start one) the factor applied to the start softness is

.. math::
    f_{linear}(t) = 1 + (r - 1)\,t, \qquad
    f_{cosine}(t) = r + (1 - r)\,\frac{1 + \cos \pi t}{2}, \qquad
    f_{exponential}(t) = r^{t}.

A fixed softness (a float or a per-channel tensor) is set to ``start * f(t)``. A learnable one
keeps learning, under a ceiling: after each step it is ``min(learned, start * f(t))`` (per
channel), so the optimizer decides how sharp the layer is below the schedule but cannot hold the
softness above it -- a soft objective often rewards a large softness that the hard operator does
not deliver, and a learned temperature then stalls where the soft and hard results differ.
:func:`hardness_gap` measures what the annealing is for: the distance between the
model's soft outputs and those of the same model with every softtorch layer in hard mode.
"""

from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

import torch
from torch import nn

from ._core.checks import check_choice, check_positive, check_positive_int
from .nn.base import SoftModule

__all__ = ["SoftnessScheduler", "HardnessGap", "hardness_gap", "hard_mode"]

#: The schedule shapes :class:`SoftnessScheduler` accepts.
SCHEDULES = ("linear", "cosine", "exponential")


def _factor(schedule: str, t: float, ratio: float) -> float:
    if schedule == "linear":
        return 1.0 + (ratio - 1.0) * t
    if schedule == "cosine":
        return ratio + (1.0 - ratio) * 0.5 * (1.0 + math.cos(math.pi * t))
    return ratio**t


def soft_layers(model: nn.Module) -> list[tuple[str, SoftModule]]:
    """The softtorch layers of ``model`` (itself included) that have a softness, with their names."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SoftModule) and m._uses_softness]


class SoftnessScheduler:
    r"""Anneal the softness of every softtorch layer in ``model`` from its current value.

    Args:
        model (nn.Module): the model (or a single softtorch layer). Every
            :class:`~softtorch.nn.SoftModule` with a softness is scheduled: fixed or learnable,
            scalar or per-channel.
        total_steps (int): steps from the start softness to the end one; later steps hold it.
        final_factor (float): end softness over start softness, in :math:`(0, \infty)`.
            Default: ``0.05``.
        schedule (str): ``"linear"``, ``"cosine"`` or ``"exponential"``. Default: ``"cosine"``.

    The start softness of each layer is read when the scheduler is built (after a
    ``load_state_dict``, the one saved).

    Example:
        >>> import torch, softtorch
        >>> from softtorch.schedules import SoftnessScheduler
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), softtorch.nn.SoftTopK(2, softness=1.0))
        >>> scheduler = SoftnessScheduler(model, total_steps=4, final_factor=0.1, schedule="linear")
        >>> for _ in range(4):
        ...     scheduler.step()
        ...     print(round(model[1].softness, 4))
        0.775
        0.55
        0.325
        0.1
    """

    def __init__(self, model: nn.Module, total_steps: int, final_factor: float = 0.05, schedule: str = "cosine"):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__} {model!r}")
        self.total_steps = check_positive_int("total_steps", total_steps)
        self.final_factor = check_positive("final_factor", final_factor)
        self.schedule = check_choice("schedule", schedule, SCHEDULES)
        self.layers = soft_layers(model)
        if not self.layers:
            raise ValueError(f"model has no softtorch layer with a softness to schedule: {type(model).__name__}")
        self.last_step = 0
        self.start = [self._read(layer) for _, layer in self.layers]

    @staticmethod
    def _read(layer: SoftModule):
        softness = layer.softness
        return softness.detach().clone() if isinstance(softness, torch.Tensor) else float(softness)

    def factor(self, step: int | None = None) -> float:
        """The schedule's factor on the start softness after ``step`` steps (default: the last one)."""
        step = self.last_step if step is None else step
        t = min(max(step, 0) / self.total_steps, 1.0)
        return _factor(self.schedule, t, self.final_factor)

    def step(self) -> None:
        """Advance the schedule by one step and write the new softness into every layer."""
        self.last_step += 1
        after = self.factor()
        with torch.no_grad():
            for (_, layer), start in zip(self.layers, self.start):
                if layer.learnable:  # learning decides below the schedule, never above it
                    log = layer.log_softness
                    cap = torch.log(torch.as_tensor(start * after, dtype=log.dtype)).to(log.device)
                    log.copy_(torch.minimum(log, cap))
                elif hasattr(layer, "softness_value"):
                    layer.softness_value.copy_(start * after)
                else:
                    layer._softness_float = start * after

    def get_last_softness(self) -> list:
        """The softness of every scheduled layer now (floats or detached tensors), in module order."""
        return [self._read(layer) for _, layer in self.layers]

    def state_dict(self) -> dict:
        """The schedule's configuration, its step and the start softness of each layer, by layer name."""
        return {
            "total_steps": self.total_steps,
            "final_factor": self.final_factor,
            "schedule": self.schedule,
            "last_step": self.last_step,
            "start": {name: start for (name, _), start in zip(self.layers, self.start)},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`; the layers' softness itself comes with the model's own state dict."""
        names = [name for name, _ in self.layers]
        if sorted(state["start"]) != sorted(names):
            raise ValueError(f"state_dict schedules layers {sorted(state['start'])}, this model has {sorted(names)}")
        self.total_steps = check_positive_int("total_steps", state["total_steps"])
        self.final_factor = check_positive("final_factor", state["final_factor"])
        self.schedule = check_choice("schedule", state["schedule"], SCHEDULES)
        self.last_step = int(state["last_step"])
        self.start = [state["start"][name] for name in names]


@contextlib.contextmanager
def hard_mode(model: nn.Module):
    """Within the block, every softtorch layer of ``model`` with a ``mode`` computes in hard mode.

    Example:
        >>> import torch, softtorch
        >>> from softtorch.schedules import hard_mode
        >>> layer = softtorch.nn.SoftSort()
        >>> with hard_mode(layer):
        ...     layer(torch.tensor([0.3, -1.0, 2.0]))
        tensor([-1.0000,  0.3000,  2.0000])
        >>> layer.config["mode"]
        'smooth'
    """
    saved = []
    for module in model.modules():
        if isinstance(module, SoftModule) and "mode" in module.config:
            saved.append((module, module.config["mode"]))
            module.config["mode"] = "hard"
    try:
        yield model
    finally:
        for module, mode in saved:
            module.config["mode"] = mode


class HardnessGap(NamedTuple):
    """:func:`hardness_gap`'s result: the soft and the hard value (outputs or metric) and their gap."""

    soft: object
    hard: object
    gap: float


def _tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for part in out for t in _tensors(part)]
    return []


def hardness_gap(model: nn.Module, batch, metric=None) -> HardnessGap:
    r"""How far ``model``'s soft outputs on ``batch`` are from those of the same model in hard mode.

    Runs ``model(*batch)`` (``model(batch)`` for a single tensor) twice without gradients: as it
    is, and with every softtorch layer in hard mode (:func:`hard_mode`).

    Args:
        model (nn.Module): the model.
        batch (Tensor or tuple): its inputs.
        metric (callable, optional): ``metric(output) -> float`` (e.g. an accuracy or a loss on
            the batch's targets). Then ``soft`` and ``hard`` are the two metric values and
            ``gap = soft - hard``. Without it, they are the outputs and ``gap`` is the mean
            absolute difference of their tensors. Default: ``None``.

    Returns:
        HardnessGap(soft, hard, gap).

    Example:
        >>> import torch, softtorch
        >>> from softtorch.schedules import hardness_gap
        >>> layer = softtorch.nn.SoftSort(softness=0.5)
        >>> x = torch.tensor([[0.3, -1.0, 2.0]])
        >>> round(hardness_gap(layer, x).gap, 4)
        0.4752
        >>> layer = softtorch.nn.SoftSort(softness=0.01)
        >>> hardness_gap(layer, x).gap < 1e-6
        True
    """
    inputs = batch if isinstance(batch, (tuple, list)) else (batch,)
    with torch.no_grad():
        soft = model(*inputs)
        with hard_mode(model):
            hard = model(*inputs)
    if metric is not None:
        soft_value, hard_value = float(metric(soft)), float(metric(hard))
        return HardnessGap(soft_value, hard_value, soft_value - hard_value)
    pairs = list(zip(_tensors(soft), _tensors(hard)))
    if not pairs:
        raise TypeError(f"model outputs no tensor to compare, got {type(soft).__name__}; pass a metric")
    total = sum(float((s.double() - h.double()).abs().sum()) for s, h in pairs)
    count = sum(s.numel() for s, _ in pairs)
    return HardnessGap(soft, hard, total / max(count, 1))
