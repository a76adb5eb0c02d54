"""Optimizers and learning-rate schedules from ``torch.optim``, chosen by name.

:class:`~sigdl_core.interfaces.TrainSettings` is framework-neutral: an optimizer and a
schedule by name, with their keyword arguments. Here they become ``torch.optim`` objects:

* ``optimizer`` is any ``torch.optim.Optimizer`` subclass, matched without regard to case
  (``sgd``, ``adam``, ``adamw``, ``rmsprop``, ``adagrad``, ``nadam`` …; ``LBFGS``, which
  needs a closure, and ``SparseAdam``, which needs sparse gradients, are left out). It gets
  ``lr``, ``weight_decay`` and ``momentum`` where its constructor takes them (``momentum``:
  SGD and RMSprop), then ``optimizer_params`` as further keyword arguments (``betas``,
  ``eps``, ``nesterov`` …), checked against its signature.
* ``schedule`` ``constant`` keeps the learning rate; ``step`` is ``StepLR`` (``gamma``
  every ``step_size`` epochs); ``cosine`` is ``CosineAnnealingLR`` annealing to zero over
  the whole run, stepped after every batch. Any other name is a
  ``torch.optim.lr_scheduler`` class with ``schedule_params`` as its keyword arguments,
  stepped once per epoch (``ReduceLROnPlateau`` given the epoch's mean training loss).

The first ``step`` of a ``torch.optim`` optimizer imports ``torch._dynamo`` once per
process (about 1.5 s on the shared 2-core machine; see the README).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch

from sigdl_core.errors import InvalidValueError, UnknownNameError
from sigdl_core.interfaces import SCHEDULES, TrainSettings

__all__ = ["check_settings", "make_optimizer", "make_scheduler", "optimizer_class", "scheduler_class"]

_EXCLUDED_OPTIMIZERS = {"lbfgs", "sparseadam"}
#: Schedulers that take other schedulers, or need arguments the settings cannot give.
_EXCLUDED_SCHEDULERS = {"lrscheduler", "chainedscheduler", "sequentiallr"}


def _subclasses(module: Any, base: type, excluded: set[str]) -> dict[str, type]:
    return {name.lower(): obj for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base
            and not name.startswith("_") and name.lower() not in excluded}


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """The ``torch.optim`` optimizer called ``name`` (any case)."""
    classes = _subclasses(torch.optim, torch.optim.Optimizer, _EXCLUDED_OPTIMIZERS)
    try:
        return classes[name.lower()]
    except KeyError:
        raise UnknownNameError("optimizer", name, sorted(classes)) from None


def scheduler_class(name: str) -> type:
    """The ``torch.optim.lr_scheduler`` class called ``name`` (any case)."""
    sched = torch.optim.lr_scheduler
    base = getattr(sched, "LRScheduler", None) or sched._LRScheduler
    classes = _subclasses(sched, base, _EXCLUDED_SCHEDULERS)
    classes["reducelronplateau"] = sched.ReduceLROnPlateau
    try:
        return classes[name.lower()]
    except KeyError:
        known = sorted({*SCHEDULES, *classes})
        raise UnknownNameError("learning-rate schedule", name, known) from None


def _optimizer_kwargs(cls: type, settings: TrainSettings) -> dict[str, Any]:
    accepted = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {"lr": float(settings.lr)}
    if "weight_decay" in accepted:
        kwargs["weight_decay"] = float(settings.weight_decay)
    elif settings.weight_decay:
        raise InvalidValueError(f"optimizer '{settings.optimizer}' takes no weight_decay",
                                "set weight_decay: 0 for it")
    if "momentum" in accepted:
        kwargs["momentum"] = float(settings.momentum)
    kwargs.update(_plain(settings.optimizer_params))
    _check_signature(cls, kwargs, f"optimizer '{settings.optimizer}'", "optimizer_params",
                     skip=1)  # params
    return kwargs


def _plain(params: Any) -> dict[str, Any]:
    """Keyword arguments from a recipe: lists become tuples (``betas: [0.9, 0.99]``)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in dict(params).items()}


def _check_signature(cls: type, kwargs: dict[str, Any], what: str, key: str, skip: int) -> None:
    sig = inspect.signature(cls.__init__)
    names = [p for p in sig.parameters if p != "self"][skip:]
    unknown = [k for k in kwargs if k not in names]
    if unknown:
        raise InvalidValueError(f"{what} has no argument '{unknown[0]}'",
                                f"{cls.__name__} takes: {', '.join(names)} (set them in {key})")


def make_optimizer(params: Iterable[torch.nn.Parameter], settings: TrainSettings) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimizer the settings name, at their initial learning rate."""
    cls = optimizer_class(settings.optimizer)
    kwargs = _optimizer_kwargs(cls, settings)
    try:
        return cls(params, **kwargs)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"optimizer '{settings.optimizer}' does not take {kwargs}: "
                                f"{' '.join(str(exc).split())}",
                                f"see torch.optim.{cls.__name__} for its arguments") from None


class Schedule:
    """Steps a ``torch.optim.lr_scheduler`` at the right moments (see the module docstring)."""

    def __init__(self, scheduler: Any | None, per_batch: bool) -> None:
        self.scheduler = scheduler
        self.per_batch = per_batch

    def after_batch(self) -> None:
        if self.scheduler is not None and self.per_batch:
            self.scheduler.step()

    def after_epoch(self, mean_loss: float) -> None:
        if self.scheduler is None or self.per_batch:
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(mean_loss)
        else:
            self.scheduler.step()


def _scheduler_kwargs(settings: TrainSettings) -> tuple[type | None, dict[str, Any], bool]:
    sched = torch.optim.lr_scheduler
    name = settings.schedule
    if name in SCHEDULES and settings.schedule_params:
        raise InvalidValueError(f"schedule '{name}' takes no schedule_params",
                                "set step_size and gamma for 'step'; name a torch.optim.lr_scheduler "
                                "class to pass it parameters")
    if name == "constant":
        return None, {}, False
    if name == "step":
        return sched.StepLR, {"step_size": settings.step_size, "gamma": float(settings.gamma)}, False
    if name == "cosine":
        return sched.CosineAnnealingLR, {}, True  # T_max is filled in with the run's batches
    cls = scheduler_class(name)
    kwargs = _plain(settings.schedule_params)
    _check_signature(cls, kwargs, f"schedule '{name}'", "schedule_params", skip=1)  # optimizer
    return cls, kwargs, False


def make_scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings, total_batches: int) -> Schedule:
    """The schedule of ``settings`` on ``optimizer`` over a run of ``total_batches`` batches."""
    cls, kwargs, per_batch = _scheduler_kwargs(settings)
    if cls is None:
        return Schedule(None, False)
    if cls is torch.optim.lr_scheduler.CosineAnnealingLR and settings.schedule == "cosine":
        kwargs = {"T_max": max(1, total_batches), "eta_min": 0.0}
    try:
        return Schedule(cls(optimizer, **kwargs), per_batch)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"schedule '{settings.schedule}' does not take {kwargs}: "
                                f"{' '.join(str(exc).split())}",
                                f"see torch.optim.lr_scheduler.{cls.__name__} for its arguments") from None


def check_settings(settings: TrainSettings) -> None:
    """Checks the optimizer, the schedule and their parameters without building either."""
    _optimizer_kwargs(optimizer_class(settings.optimizer), settings)
    _scheduler_kwargs(settings)
