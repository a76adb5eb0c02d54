"""Acceleration settings, and the one place the core chooses serial or data-parallel training.

:class:`DataParallel` says how training runs on several workers (``sigdl train --workers N``,
recipe ``accelerate: {train_workers: N}``); :func:`train` is what every trainer in the core
calls (``sigdl train``, the loop's baseline, the search's retraining), so that all of them
take the same path: :meth:`~sigdl_core.interfaces.Framework.train` for one worker,
:meth:`~sigdl_core.interfaces.Framework.train_data_parallel` for more (the torch framework
does it with DistributedDataParallel under torch's elastic agent). The engines themselves
live in the frameworks; this module imports nothing heavy.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidValueError, SigdlError
from .interfaces import (ArrayDataset, Framework, Model, ProgressCallback, Projection, Teacher, TrainHistory,
                         TrainSettings)

__all__ = ["DataParallel", "WorkerLostError", "train"]


class WorkerLostError(SigdlError):
    """A training worker died or never came (killed, out of memory, a peer that never joined).

    Exit code 2 with one line: what to change (fewer workers, the rendezvous) is the user's;
    what the run finished before it (candidates in the run folder) is kept.
    """


@dataclass(frozen=True)
class DataParallel:
    """How one training runs on several workers.

    ``workers`` processes per node (``torchrun --nproc-per-node``), each on ``threads``
    compute threads (None: one, torchrun's default, which avoids oversubscribing the cores);
    ``nnodes`` machines meeting at ``rdzv_endpoint`` (``host:port``; None on one machine: a
    free port on 127.0.0.1), this one being ``node_rank`` (None: let the rendezvous assign
    it); ``rdzv_id`` names the job on that endpoint. ``backend`` is None for the framework's
    choice (gloo on CPU, NCCL when every worker has a CUDA device). ``timeout_s`` bounds
    every wait of the rendezvous and of the process group: a peer that never comes is an
    error after that long, never a hang.
    """

    workers: int = 1
    threads: int | None = None
    nnodes: int = 1
    node_rank: int | None = None
    rdzv_endpoint: str | None = None
    rdzv_id: str | None = None
    backend: str | None = None
    timeout_s: float = 300.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def whole(name: str, value: Any, low: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidValueError(f"{name}={value!r} must be a whole number >= {low}",
                                        f"e.g. {name.replace('_', '-')} {max(low, 2)}")

        whole("workers", self.workers, 1)
        whole("nnodes", self.nnodes, 1)
        if self.threads is not None:
            whole("threads_per_worker", self.threads, 1)
        if self.node_rank is not None:
            whole("node_rank", self.node_rank, 0)
            if self.node_rank >= self.nnodes:
                raise InvalidValueError(f"node rank {self.node_rank} is not below the {self.nnodes} nodes",
                                        "number the nodes 0 .. nnodes-1")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise InvalidValueError(f"{self.nnodes} nodes need a rendezvous endpoint",
                                    "give --rdzv-endpoint HOST:PORT, the same on every node")
        if self.rdzv_endpoint is not None:
            host, _, port = self.rdzv_endpoint.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise InvalidValueError(f"rendezvous endpoint '{self.rdzv_endpoint}' is not HOST:PORT",
                                        "e.g. --rdzv-endpoint 10.0.0.1:29400")
        if self.backend not in (None, "gloo", "nccl"):
            raise InvalidValueError(f"backend '{self.backend}' is not gloo or nccl", "leave it out to choose")
        if not isinstance(self.timeout_s, (int, float)) or not self.timeout_s > 0:
            raise InvalidValueError(f"timeout {self.timeout_s!r} must be a number of seconds > 0")

    @property
    def distributed(self) -> bool:
        """Whether training leaves this process (more than one worker in all)."""
        return self.workers * self.nnodes > 1

    @classmethod
    def from_recipe(cls, accelerate: Mapping[str, Any] | None, **overrides: Any) -> DataParallel:
        """From a recipe's ``accelerate`` section, with command-line values (non-None) on top."""
        section = dict(accelerate or {})
        values = {
            "workers": section.get("train_workers", 1),
            "threads": section.get("threads_per_worker"),
            "nnodes": section.get("nnodes", 1),
            "rdzv_endpoint": section.get("rdzv_endpoint"),
            "timeout_s": section.get("timeout_s", 300.0),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {"workers": self.workers, "threads_per_worker": self.threads or 1, "nnodes": self.nnodes,
                "node_rank": self.node_rank, "rdzv_endpoint": self.rdzv_endpoint}


def train(
    framework: Framework,
    model: Model,
    data: ArrayDataset,
    settings: TrainSettings,
    parallel: DataParallel | None = None,
    projection: Projection | None = None,
    progress: ProgressCallback | None = None,
    teacher: Teacher | None = None,
) -> TrainHistory:
    """Trains on one worker, or data-parallel when ``parallel`` asks for more than one.

    ``teacher`` (knowledge distillation) is passed only when given, so that a framework
    without :attr:`~sigdl_core.interfaces.Framework.distills` is called as before.

    A data-parallel run whose measured all-reduce costs more than the step time it saves
    prints one warning line with the ratio (on standard error; it is also in the history's
    ``parallel`` record).
    """
    extra = {"teacher": teacher} if teacher is not None else {}
    if parallel is None or not parallel.distributed:
        return framework.train(model, data, settings, projection=projection, progress=progress, **extra)
    history = framework.train_data_parallel(model, data, settings, parallel, projection=projection,
                                            progress=progress, **extra)
    warning = (history.parallel or {}).get("warning")
    if warning:
        sys.stderr.write(f"warning: {warning}\n")
        sys.stderr.flush()
    return history
