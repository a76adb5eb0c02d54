"""Projections for the data-parallel tests, in a module of their own: the workers are other
processes, which import it by name (the tests put this folder on their PYTHONPATH)."""

from __future__ import annotations

import os
import signal

import numpy as np


class Masks:
    """Keeps pruned weights at zero (a compressor's projection, kept here so that the test
    needs only this plugin); importable by the workers through PYTHONPATH."""

    def __init__(self, masks: dict[str, np.ndarray]) -> None:
        self.masks = masks

    def __call__(self, weights: dict[str, np.ndarray]) -> None:
        for name, mask in self.masks.items():
            weights[name][~mask] = 0.0


class KillRankOne(Masks):
    """A projection that SIGKILLs the worker of rank 1 at its first step: a worker that dies."""

    def __call__(self, weights: dict[str, np.ndarray]) -> None:
        if os.environ.get("RANK") == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        super().__call__(weights)


class AbortRankOne(Masks):
    """A projection after which the worker of rank 1 writes a line to standard error and
    aborts (SIGABRT), as an uncaught C++ exception does."""

    def __call__(self, weights: dict[str, np.ndarray]) -> None:
        if os.environ.get("RANK") == "1":
            os.write(2, b"terminate called after throwing an instance of 'demo::Lost'\n")
            os.abort()
        super().__call__(weights)
