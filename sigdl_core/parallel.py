"""Work spread over processes or machines through one ``concurrent.futures.Executor``.

:func:`open_executor` gives the executor a run uses: a local process pool for ``jobs`` > 1
(``--jobs N``, recipe ``accelerate: {jobs: N}``), or a Dask cluster's
``Client.get_executor()`` for ``--cluster tcp://host:8786`` (recipe ``accelerate:
{cluster: ...}``), or None (serial). Dask reschedules a task whose worker was lost on another
worker (its ``distributed.scheduler.allowed-failures``, 3 by default); the local pool is
rebuilt once and the tasks resubmitted when one of its processes dies
(:func:`map_ordered`; :class:`Submitter` for tasks submitted and read one by one, as the
search's pipelined candidates are). Results always come back in submission order, so what
is decided from them does not depend on how many workers computed them. Pool workers run
one compute thread each and end with the driver.

:func:`sharded_accuracy` is re-testing of one model split across the executor's workers:
the split is cut into contiguous shards, each worker counts the correct top-1 and top-5
predictions of its shard, and the counts are summed: the result is the serial
evaluation's, bit for bit (the same integer counts over the same ``n``), not an average of
averages. The model travels as the bytes of the framework's own checkpoint
(:meth:`~sigdl_core.interfaces.Framework.save`, read back by its safe
:meth:`~sigdl_core.interfaces.Framework.load`).

Dask is imported only when a cluster is named.
"""

from __future__ import annotations

import contextlib
import sys
import math
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path
from typing import Any

from .errors import BadInputError, InvalidValueError
from .interfaces import Accuracy, ArrayDataset, Framework, Model

__all__ = ["Submitter", "checkpoint_bytes", "executor_width", "map_ordered", "only_split", "open_executor",
           "pruned_accuracy", "sharded_accuracy", "warm_up"]


def _worker_init() -> None:
    """Pool-worker initializer: one compute thread per worker (the pool's processes, not
    their threads, share the cores; set before the worker's first task imports torch, whose
    thread pool reads it), and the worker ends with the driver (:func:`_die_with_the_driver`)."""
    import os

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    _die_with_the_driver()


def _die_with_the_driver() -> None:
    """Pool-worker initializer: on Linux, the kernel kills this worker when its parent dies.

    A driver killed with SIGKILL cannot shut its pool down, and spawned workers would
    otherwise wait for work forever; the run resumes with a new pool. The signal comes when
    the *thread* that started the worker ends, so submit to a :func:`local_pool` from a
    thread that outlives the pool (the driver's main thread does).
    """
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def local_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes that end when the driver does.

    spawn, not fork: a forked child would inherit the driver's torch thread pools mid-state.
    """
    import multiprocessing

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init)


@contextlib.contextmanager
def open_executor(jobs: int = 1, cluster: str | None = None,
                  connect_timeout_s: float = 30.0) -> Iterator[Executor | None]:
    """The executor of ``jobs`` local processes, or of the Dask scheduler at ``cluster``
    (reached within ``connect_timeout_s``)."""
    if cluster:
        try:
            from distributed import Client
        except ImportError:
            raise BadInputError("--cluster needs Dask distributed, which is not installed",
                                "pip install 'dask[distributed]'") from None
        try:
            client = Client(cluster, timeout=connect_timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise BadInputError(f"cannot reach the Dask scheduler at '{cluster}': {' '.join(str(exc).split())[:200]}",
                                "start one with 'dask scheduler' and 'dask worker', or leave --cluster out") from None
        try:
            yield client.get_executor(pure=False)
        finally:
            client.close()
        return
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InvalidValueError(f"jobs={jobs!r} must be a whole number >= 1", "e.g. --jobs 2")
    if jobs == 1:
        yield None
        return
    pool = local_pool(jobs)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def map_ordered(executor: Executor | None, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]],
                on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
    """``[fn(*args) for args in calls]`` on ``executor`` (here when None), in that order.

    ``on_result(i, result)`` is called in the driver as each result arrives (in any order),
    so that it can be stored at once. A local pool whose process died is rebuilt once and the
    unfinished calls resubmitted; a second loss is raised.
    """
    from concurrent.futures import as_completed

    results: dict[int, Any] = {}
    if executor is None:
        for i, args in enumerate(calls):
            results[i] = fn(*args)
            if on_result is not None:
                on_result(i, results[i])
        return [results[i] for i in range(len(calls))]
    pool = executor
    for attempt in range(2):
        pending = [i for i in range(len(calls)) if i not in results]
        futures = {pool.submit(fn, *calls[i]): i for i in pending}
        try:
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                if on_result is not None:
                    on_result(i, results[i])
            break
        except BrokenProcessPool:
            if attempt or not isinstance(pool, ProcessPoolExecutor):
                raise
            pool = local_pool(getattr(pool, "_max_workers", 2))
    if pool is not executor:
        pool.shutdown(wait=True)
    return [results[i] for i in range(len(calls))]


def _shard_counts(framework_name: str, checkpoint: bytes, suffix: str, data: ArrayDataset) -> tuple[int, int, int, Any]:
    """In a worker: the correct top-1 and top-5 counts of the model on ``data``'s test split,
    and the per-sample top-1 hits when the framework gives them."""
    from .plugins import load_plugins

    framework = load_plugins().registry.framework(framework_name)
    with tempfile.TemporaryDirectory(prefix="sigdl-shard-") as tmp:
        path = Path(tmp) / f"model{suffix}"
        path.write_bytes(checkpoint)
        model = framework.load(path)
    accuracy = framework.evaluate(model, data, "test")
    n = accuracy.samples
    return round(accuracy.top1 * n), round(accuracy.top5 * n), n, accuracy.correct


def sharded_accuracy(framework: Framework, model: Model, data: ArrayDataset, split: str,
                     executor: Executor | None, shards: int, suffix: str = ".model") -> Accuracy:
    """The model's accuracy on ``split``, its samples cut into ``shards`` evaluated on
    ``executor``'s workers; the correct counts are summed (bit-identical to serial)."""
    x, y = data.arrays(split)
    n = len(y)
    if n == 0:
        raise InvalidValueError(f"split '{split}' of '{data.name}' has no samples to test")
    shards = max(1, min(int(shards), n))
    checkpoint = checkpoint_bytes(framework, model, suffix)
    size = math.ceil(n / shards)
    empty_x, empty_y = x[:0], y[:0]
    calls = []
    for start in range(0, n, size):
        part = replace(data, x_train=empty_x, y_train=empty_y, x_val=None, y_val=None,
                       x_test=x[start:start + size], y_test=y[start:start + size])
        calls.append((framework.name, checkpoint, suffix, part))
    counts = map_ordered(executor, _shard_counts, calls)
    top1 = sum(c[0] for c in counts)
    top5 = sum(c[1] for c in counts)
    total = sum(c[2] for c in counts)
    hits = None
    if all(c[3] is not None for c in counts):  # per-sample hits in the split's order, as serial gives them
        import numpy as np

        hits = np.concatenate([np.asarray(c[3], dtype=bool) for c in counts])
    return Accuracy(top1=top1 / total, top5=top5 / total, samples=total, correct=hits)


def checkpoint_bytes(framework: Framework, model: Model, suffix: str) -> bytes:
    """The model as the bytes of the framework's own checkpoint, for workers to load safely."""
    with tempfile.TemporaryDirectory(prefix="sigdl-ckpt-") as tmp:
        return Path(framework.save(model, Path(tmp) / f"model{suffix}")).read_bytes()


def only_split(data: ArrayDataset, split: str) -> ArrayDataset:
    """``data`` holding only ``split``'s arrays (what a worker needs to train or evaluate on)."""
    x, y = data.arrays(split)
    empty_x, empty_y = x[:0], y[:0]
    if split == "train":
        return replace(data, x_val=None, y_val=None, x_test=empty_x, y_test=empty_y)
    if split == "validation":
        return replace(data, x_train=empty_x, y_train=empty_y, x_test=empty_x, y_test=empty_y, x_val=x, y_val=y)
    return replace(data, x_train=empty_x, y_train=empty_y, x_val=None, y_val=None, x_test=x, y_test=y)


def pruned_accuracy(framework_name: str, checkpoint: bytes, suffix: str, compressor_name: str,
                    weights: dict[str, Any], kinds: dict[str, str], params: dict[str, Any],
                    data: ArrayDataset, split: str) -> float:
    """In a worker: the top-1 on ``split`` of the model with ``weights`` compressed by
    ``compressor_name`` at ``params`` (one point of the search's sensitivity grid)."""
    from .plugins import load_plugins

    registry = load_plugins().registry
    framework = registry.framework(framework_name)
    with tempfile.TemporaryDirectory(prefix="sigdl-point-") as tmp:
        path = Path(tmp) / f"model{suffix}"
        path.write_bytes(checkpoint)
        model = framework.load(path)
    result = registry.compressor(compressor_name).compress(weights, kinds, params)
    framework.set_weights(model, result.weights)
    return framework.evaluate(model, data, split).top1


def executor_width(executor: Executor | None) -> int:
    """How many tasks ``executor`` runs at once: a local pool's processes, a Dask cluster's
    worker threads (1 when None or unknown)."""
    if executor is None:
        return 1
    if isinstance(executor, ProcessPoolExecutor):
        return int(getattr(executor, "_max_workers", 1))
    client = getattr(executor, "_client", None)
    if client is not None:
        with contextlib.suppress(Exception):
            return max(1, sum(int(w.get("nthreads", 1)) for w in client.scheduler_info()["workers"].values()))
    return 1


def warm_up(framework_name: str) -> str:
    """In a worker: loads the plugins and the framework (importing torch takes seconds) and
    runs its :meth:`~sigdl_core.interfaces.Framework.warm_up`, so that the first real task
    does not pay for them."""
    from .plugins import load_plugins

    load_plugins().registry.framework(framework_name).warm_up()
    return framework_name


class Submitter:
    """Tasks submitted one by one to ``executor``, each read back when the caller needs it.

    A local pool whose process died (:class:`BrokenProcessPool`) is rebuilt once per loss (at
    most three times; a fourth loss is raised) and every unfinished task resubmitted, so a lost worker costs a candidate's recomputation,
    never the candidate; Dask reschedules a lost worker's tasks itself. :attr:`executor` is
    the live executor (a rebuilt pool replaces the one given, and is shut down by
    :meth:`close`).
    """

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._own: ProcessPoolExecutor | None = None
        self._tasks: dict[int, tuple[Callable[..., Any], tuple[Any, ...], Any]] = {}
        self._next = 0
        self.rebuilt = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> int:
        ticket = self._next
        self._next += 1
        try:
            future = self.executor.submit(fn, *args)
        except BrokenProcessPool:
            if not isinstance(self.executor, ProcessPoolExecutor) or self.rebuilt >= 3:
                raise
            self._rebuild()
            future = self.executor.submit(fn, *args)
        self._tasks[ticket] = (fn, args, future)
        return ticket

    def result(self, ticket: int) -> Any:
        """The task's result (waiting for it); the ticket is spent."""
        while True:
            fn, args, future = self._tasks[ticket]
            try:
                value = future.result()
            except BrokenProcessPool:
                if not isinstance(self.executor, ProcessPoolExecutor) or self.rebuilt >= 3:
                    raise
                self._rebuild()
                continue
            del self._tasks[ticket]
            return value

    def busy(self) -> int:
        """How many submitted tasks have not finished."""
        return sum(1 for _fn, _args, f in self._tasks.values() if not f.done())

    def wait_all(self) -> None:
        """Waits until every submitted task has finished (their results stay to be read)."""
        from concurrent.futures import wait

        wait([f for _fn, _args, f in self._tasks.values()])

    def forget(self, ticket: int) -> None:
        """The task's result is not needed: cancelled if it has not started."""
        task = self._tasks.pop(ticket, None)
        if task is not None:
            task[2].cancel()

    def _rebuild(self) -> None:
        width = executor_width(self.executor)
        if self._own is not None:
            self._own.shutdown(wait=False, cancel_futures=True)
        self._own = local_pool(width)
        self.executor = self._own
        self.rebuilt += 1
        for ticket, (fn, args, future) in list(self._tasks.items()):
            if not future.done() or future.exception() is not None:
                self._tasks[ticket] = (fn, args, self.executor.submit(fn, *args))

    def close(self) -> None:
        for ticket in list(self._tasks):
            self.forget(ticket)
        if self._own is not None:
            self._own.shutdown(wait=True, cancel_futures=True)
            self._own = None
