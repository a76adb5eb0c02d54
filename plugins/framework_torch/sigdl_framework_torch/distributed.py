"""Data-parallel training with DistributedDataParallel, launched by torch's elastic agent.

:func:`train_data_parallel` is :meth:`TorchFramework.train_data_parallel`: it starts
``parallel.workers`` processes on this node through ``torch.distributed.launcher.api.
elastic_launch`` (the engine behind ``torchrun``: its rendezvous, its worker monitoring; no
hand-written ``spawn`` bookkeeping) and waits for them. Each worker trains the same model on
its share of every global batch (:func:`~sigdl_framework_torch.framework.train_module` with
a :class:`~sigdl_framework_torch.framework.RankGroup`): the seeded permutation of the serial
run, each rank taking every ``world``-th sample of a batch, the loss scaled so that DDP's
averaged gradient is the serial one. Under a seed, a run is deterministic for a given number
of workers. The projection runs on every rank after every step, so masks and shared weights
hold on all of them; after training every rank's weights are hashed and the hashes compared.

What goes between the driver and the workers are files in a temporary folder, in safe
formats: the model's ``state_dict`` by ``torch.save`` (read back with ``weights_only=True``),
the training split as ``.npz`` (read with ``allow_pickle=False``), the job and each rank's
result as JSON. The workers are ``python -m sigdl_framework_torch.distributed JOB_DIR``
processes, as torchrun starts them (a command, not a forked or spawned interpreter: spawn
would re-run the caller's ``__main__``, fork would inherit torch's thread pools). The
projection object (a compressor's, e.g. a pruning mask) is the one thing pickled: by this
process, into its own private temporary folder (mode 0700), for its own workers.

The known traps of DDP on CPU are handled here:

* **oversubscription**: each worker computes on ``parallel.threads`` threads (default one,
  as torchrun sets ``OMP_NUM_THREADS=1``), set before torch starts its pools;
* **gloo on loopback**: for a one-node run ``GLOO_SOCKET_IFNAME`` is set to the loopback
  interface unless the user set it, and the rendezvous is a free port on 127.0.0.1; for
  several nodes the user's interface choice stands (see docs/acceleration.md);
* **hangs at init_process_group**: the rendezvous and the process group both wait at most
  ``parallel.timeout_s``; then the run ends with one line;
* **NCCL on CPU hosts**: NCCL is chosen only when CUDA is available with a device per
  worker; asking for it without is refused before any process starts. The NCCL path
  (module and batches on ``cuda:LOCAL_RANK``) is untested here: this machine has no GPU.
* **batch-norm statistics**: each rank's running statistics follow its own share of the
  batch while training (no broadcast of buffers before every forward), and every rank takes
  rank 0's at the end: the weights DDP's default per-forward broadcast would give;
* **a model too small to gain**: before training each rank times one step on its share of
  a batch and one all-reduce of the gradients' size; when the all-reduce costs more than
  the step time the workers save, the run warns with the measured ratio;
* **start-up counted as training**: those probe steps run as training will (its memory
  layout, its optimizer), so a fresh worker's one-time costs (the import of
  ``torch._dynamo`` by the first optimizer and by DDP, about 1 s; the first steps' kernels)
  fall in the workers' start-up, before the training clock starts, as the serial run's do
  in its long-lived process.

A worker that dies (killed, out of memory) ends the training with one line naming the rank
and how it died (:class:`~sigdl_core.accelerate.WorkerLostError`); a SigDL error raised in a
worker (a diverging loss) is raised again in the driver as itself.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import pickle
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sigdl_core import errors as sigdl_errors
from sigdl_core.accelerate import DataParallel, WorkerLostError
from sigdl_core.errors import InvalidValueError, SigdlError, UnsupportedModelError
from sigdl_core.files import atomic_path, atomic_write_json
from sigdl_core.interfaces import (ArrayDataset, Model, ProgressCallback, Projection, Teacher, TrainHistory,
                                   TrainSettings)

__all__ = ["choose_backend", "loopback_interface", "train_data_parallel"]

#: Loggers of torch's elastic agent, quieted while it runs (its failures become one line).
_ELASTIC_LOGGERS = ("torch.distributed.elastic", "torch.distributed.launcher", "torch.distributed.run")
#: How often rank 0 writes its progress for the driver, in seconds.
_PROGRESS_EVERY_S = 0.3


def loopback_interface() -> str:
    """The name of this machine's loopback interface (``lo`` on Linux, ``lo0`` on macOS)."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        names = []
    return next((n for n in names if n.startswith("lo")), "lo")


def choose_backend(parallel: DataParallel) -> str:
    """gloo on CPU; NCCL only when CUDA is there with a device for every local worker."""
    cuda = torch.cuda.is_available() and torch.distributed.is_nccl_available()
    devices = torch.cuda.device_count() if cuda else 0
    if parallel.backend == "nccl" and devices < parallel.workers:
        raise InvalidValueError(
            f"the NCCL backend needs a CUDA device per worker; this host has {devices} for {parallel.workers} workers",
            "leave the backend out (gloo on CPU) or use fewer workers")
    if parallel.backend is not None:
        return parallel.backend
    return "nccl" if devices >= parallel.workers else "gloo"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Sets environment variables for the workers (they inherit them), and restores them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _quiet_agent() -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in _ELASTIC_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _progress_poller(path: Path, progress: ProgressCallback | None, stop: threading.Event) -> threading.Thread | None:
    if progress is None:
        return None

    def poll() -> None:
        last = None
        while not stop.wait(_PROGRESS_EVERY_S):
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if state != last:
                last = state
                progress(state["description"], int(state["completed"]), int(state["total"]))

    thread = threading.Thread(target=poll, name="sigdl-ddp-progress", daemon=True)
    thread.start()
    return thread


def train_data_parallel(
    framework: Any,
    model: Model,
    data: ArrayDataset,
    settings: TrainSettings,
    parallel: DataParallel,
    projection: Projection | None = None,
    progress: ProgressCallback | None = None,
    teacher: Teacher | None = None,
) -> TrainHistory:
    """Trains ``model`` in place with DDP on ``parallel.workers`` workers (see the module docstring).

    With ``teacher`` (distillation), its logits travel beside the training split and every
    rank takes the rows of its own samples."""
    from torch.distributed.elastic.multiprocessing.api import DefaultLogsSpecs, Std
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    module = framework._module(model)
    if settings.epochs == 0:
        return TrainHistory()
    if projection is not None:
        try:
            pickle.dumps(projection)
        except Exception as exc:  # noqa: BLE001 - any reason it cannot travel
            raise UnsupportedModelError(
                f"the compressor's projection ({type(projection).__name__}) cannot be sent to training workers: "
                f"{str(exc).splitlines()[0][:200]}", "train with --workers 1") from None
    backend = choose_backend(parallel)
    threads = parallel.threads or 1
    x, y = framework._tensors(model, data, "train")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sigdl-ddp-") as tmp:
        job = Path(tmp)
        torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, job / "model.pt")
        soft = {}
        if teacher is not None and teacher.weight > 0:
            teacher.check(len(y), model.num_classes)
            soft = {"teacher": np.ascontiguousarray(teacher.logits, dtype=np.float32)}
        np.savez(job / "train.npz", x=x.numpy(), y=y.numpy(), **soft)
        (job / "projection.pkl").write_bytes(pickle.dumps(projection))
        atomic_write_json(job / "job.json", {
            "architecture": model.architecture, "input_shape": list(model.input_shape),
            "num_classes": model.num_classes, "settings": settings.to_dict(), "backend": backend,
            "threads": threads, "timeout_s": float(parallel.timeout_s), "progress": progress is not None,
            "teacher": {"weight": float(teacher.weight), "temperature": float(teacher.temperature)} if soft else None})
        local = parallel.nnodes == 1 and not parallel.rdzv_endpoint
        endpoint = parallel.rdzv_endpoint or f"127.0.0.1:{_free_port()}"
        config = LaunchConfig(
            min_nodes=parallel.nnodes, max_nodes=parallel.nnodes, nproc_per_node=parallel.workers,
            run_id=parallel.rdzv_id or (uuid.uuid4().hex if local else "sigdl"), rdzv_backend="c10d",
            rdzv_endpoint=endpoint,
            rdzv_configs={"timeout": int(parallel.timeout_s), "join_timeout": int(parallel.timeout_s),
                          **({"rank": parallel.node_rank} if parallel.node_rank is not None else {}),
                          **({"is_host": True} if local else {})},
            max_restarts=0, monitor_interval=0.1, start_method="spawn",
            logs_specs=DefaultLogsSpecs(log_dir=str(job / "logs"), redirects=Std.ALL),
            local_addr="127.0.0.1" if local else None)
        env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "SIGDL_TORCH_THREADS": str(threads)}
        if local and "GLOO_SOCKET_IFNAME" not in os.environ:
            env["GLOO_SOCKET_IFNAME"] = loopback_interface()
        stop = threading.Event()
        poller = _progress_poller(job / "progress.json", progress, stop)
        launched = time.time()
        try:
            with _environment(env), _quiet_agent():
                elastic_launch(config, sys.executable)("-m", "sigdl_framework_torch.distributed", str(job))
        except ChildFailedError as exc:
            raise _worker_failure(job, exc, parallel) from None
        except Exception as exc:  # rendezvous timeouts and refusals (RendezvousError, RuntimeError)
            first = " ".join(str(exc).split())[:240] or type(exc).__name__
            raise WorkerLostError(
                f"data-parallel training could not start its {parallel.workers * parallel.nnodes} workers: {first}",
                "check that every node runs the same command with the same --rdzv-endpoint "
                "(see docs/acceleration.md)") from None
        finally:
            stop.set()
            if poller is not None:
                poller.join(timeout=2)
        finished = time.time()
        mine = [json.loads(p.read_text()) for p in sorted(job.glob("rank-*.json"))]
        if not mine:
            raise WorkerLostError("data-parallel workers ended without a result", "train with --workers 1")
        digests = {tuple(r["digests"]) for r in mine}
        if len(digests) != 1 or len(set(next(iter(digests)))) != 1:
            raise WorkerLostError("data-parallel workers ended with different weights",
                                  "report this as a bug; train with --workers 1 meanwhile")
        state = torch.load(job / "result.pt", weights_only=True, map_location="cpu")
        framework._load_state(model, state, job / "result.pt")
    first = min(mine, key=lambda r: r["rank"])
    history = TrainHistory(loss=first["history"]["loss"], train_top1=first["history"]["train_top1"],
                           seconds=time.perf_counter() - started)
    history.parallel = {
        **parallel.to_dict(), "backend": backend, "world_size": first["world"],
        "samples_per_s": round(first["samples"] / first["train_s"], 2) if first["train_s"] else None,
        "seconds": {"start_workers": round(first["ready_at"] - launched, 3),
                    "train": round(first["train_s"], 3),
                    "transfer_and_stop": round((finished - launched) - (first["ready_at"] - launched)
                                               - first["train_s"], 3)},
        "probe": {k: v for k, v in first["probe"].items() if k != "warning"}, "warning": first["probe"].get("warning"),
        "rank_digests": list(next(iter(digests))),
    }
    return history


def _worker_failure(job: Path, exc: Exception, parallel: DataParallel) -> SigdlError:
    """One line for a failed worker: a SigDL error a worker raised, as itself; else the rank
    that died first in its own right (killed by a signal other than the agent's SIGTERM, or
    exiting without a word), not the peers that failed because it was gone."""
    reports: dict[int, dict[str, Any]] = {}
    for path in sorted(job.glob("error-*.json")):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        reports[int(info["rank"])] = info
        if info.get("sigdl"):
            cls = getattr(sigdl_errors, info["type"], None)
            try:
                if isinstance(cls, type) and issubclass(cls, SigdlError):
                    return cls(info["message"], info.get("hint"))
            except TypeError:
                pass
            return InvalidValueError(info["message"], info.get("hint"))
    failures = sorted((getattr(exc, "failures", {}) or {}).items())
    hint = "check its memory (fewer --workers, a smaller batch) and run again; finished candidates are kept"
    for rank, failure in failures:
        if rank in reports:
            continue
        said = _last_words(job, rank)
        said = f" (its last output: {said!r})" if said else ""
        if failure.exitcode < 0 and failure.signal_name() != "SIGTERM":
            return WorkerLostError(f"data-parallel worker rank {rank} was killed by {failure.signal_name()}{said}; "
                                   "training stopped", hint)
        if failure.exitcode > 0:
            return WorkerLostError(f"data-parallel worker rank {rank} exited with code {failure.exitcode}{said}; "
                                   "training stopped", hint)
    if reports:
        info = reports[min(reports)]
        return WorkerLostError(f"data-parallel worker rank {info['rank']} failed: {info['type']}: {info['message']}",
                               "train with --workers 1 to see the error in full")
    rank = failures[0][0] if failures else "?"
    return WorkerLostError(f"data-parallel worker rank {rank} failed; training stopped", hint)


def _last_words(job: Path, rank: int, limit: int = 160) -> str:
    """The last non-empty line the worker of ``rank`` wrote to its standard error (the agent
    redirects it under ``job/logs``), shortened to ``limit`` characters; "" when there is none.
    A worker killed by a signal leaves no error file, and this line (an uncaught C++
    exception's ``what()``, say) is then all that tells why."""
    for log in sorted(job.glob(f"logs/**/attempt_*/{rank}/stderr.log")):
        try:
            with open(log, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        except OSError:
            continue
        if lines:
            line = lines[-1]
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


# --------------------------------------------------------------------------- in the workers


def _digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _probe(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, settings: TrainSettings, rank: int,
           world: int, device: torch.device) -> dict[str, Any]:
    """Times one step (forward and backward) on this rank's share of a batch and one
    all-reduce of the gradients' size, on a copy of the model (the training itself is not
    touched); the maxima over ranks.

    The copy takes the steps as training will: in training's memory layout (channels-last
    for convolutional models) and with the settings' optimizer stepping after each. So the
    step time is the one training sees, and a fresh worker's one-time costs are paid here,
    before the training clock starts, as the serial run in a long-lived process has paid
    them before: the first ``torch.optim`` optimizer of a process imports ``torch._dynamo``
    (about 1 s on the 2-core machine), and the first steps in a layout create its kernels.
    Counted in the training, they made a 2-step MobileNet epoch on 2 workers 0.45x one.
    """
    import torch.distributed as dist

    from .framework import _channels_last
    from .optimization import make_optimizer

    probe = copy.deepcopy(module).train()
    params = [p for p in probe.parameters() if p.requires_grad]
    idx = torch.arange(min(len(y), settings.batch_size))[rank::world]
    xb, yb = x.index_select(0, idx).to(device), y.index_select(0, idx).to(device)
    steps, reduces = [], []
    with torch.random.fork_rng(devices=[]), _channels_last(probe) as layout:
        if layout is not None:
            xb = xb.contiguous(memory_format=layout)
        optimizer = make_optimizer(params, settings)
        for _ in range(3):
            t0 = time.perf_counter()
            optimizer.zero_grad()
            F.cross_entropy(probe(xb), yb).backward()
            steps.append(time.perf_counter() - t0)
            optimizer.step()
    flat = torch.zeros(sum(p.numel() for p in params), device=device)
    for _ in range(3):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(flat)
        reduces.append(time.perf_counter() - t0)
    both = torch.tensor([min(steps[1:]), min(reduces[1:])], dtype=torch.float64, device=device)
    dist.all_reduce(both, op=dist.ReduceOp.MAX)
    step_s, reduce_s = float(both[0]), float(both[1])
    ratio = reduce_s / step_s if step_s > 0 else float("inf")
    speedup = world * step_s / (step_s + reduce_s) if step_s + reduce_s > 0 else 1.0
    out = {"step_ms": round(1e3 * step_s, 3), "allreduce_ms": round(1e3 * reduce_s, 3),
           "allreduce_per_step": round(ratio, 3), "estimated_speedup": round(speedup, 3)}
    if world > 1 and speedup < 1.0:
        out["warning"] = (
            f"{world} workers are unlikely to be faster than one for this model: an all-reduce of its gradients "
            f"took {1e3 * reduce_s:.2f} ms against {1e3 * step_s:.2f} ms for a step on a worker's share of the batch "
            f"(all-reduce/step {ratio:.2f}, estimated speed-up {speedup:.2f}x); use --workers 1, a larger batch "
            f"or a larger model")
    return out


def _worker(job_dir: str) -> None:
    """One DDP rank: joins the group, trains its share, writes the result (local rank 0)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from .framework import RankGroup, TorchFramework, train_module

    job = Path(job_dir)
    rank = int(os.environ.get("RANK", "0"))
    try:
        spec = json.loads((job / "job.json").read_text())
        projection = pickle.loads((job / "projection.pkl").read_bytes())  # written by our own driver
        torch.set_num_threads(int(spec["threads"]))
        world, local_rank = int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
        backend = spec["backend"]
        device = torch.device(f"cuda:{local_rank}") if backend == "nccl" else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=timedelta(seconds=float(spec["timeout_s"])))
        fw = TorchFramework()
        model = fw.build(spec["architecture"], spec["input_shape"], spec["num_classes"])
        fw._load_state(model, torch.load(job / "model.pt", weights_only=True, map_location="cpu"),
                       job / "model.pt")
        with np.load(job / "train.npz", allow_pickle=False) as arrays:
            x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])
            teacher = Teacher(logits=arrays["teacher"], **spec["teacher"]) if spec.get("teacher") else None
        module = model.native.to(device)
        x, y = x.to(device), y.to(device)
        settings = TrainSettings(**spec["settings"])
        probe = _probe(module, x, y, settings, rank, world, device)

        def wrap(m: torch.nn.Module) -> torch.nn.Module:
            # No broadcast of buffers before every forward: what it would send is rank 0's
            # batch-norm statistics, which rank 0 keeps either way, and training's forward
            # takes the batch's statistics, not the running ones; every rank takes rank 0's
            # once, after training (below). The gradients are all-reduced as DDP does.
            # gradient_as_bucket_view: the gradients live in DDP's all-reduce buckets, not
            # copied into them and back every step (a MobileNet's 17 MB each way)
            return DistributedDataParallel(m, device_ids=[local_rank] if device.type == "cuda" else None,
                                           forward_sync_buffers=False, gradient_as_bucket_view=True)

        def all_reduce(loss_sum: float, correct: int) -> tuple[float, int]:
            t = torch.tensor([loss_sum, float(correct)], dtype=torch.float64, device=device)
            dist.all_reduce(t)
            return float(t[0]), int(round(float(t[1])))

        last = [0.0]

        def progress(description: str, completed: int, total: int) -> None:
            now = time.perf_counter()
            if now - last[0] >= _PROGRESS_EVERY_S or completed == total:
                last[0] = now
                atomic_write_json(job / "progress.json",
                                  {"description": description, "completed": completed, "total": total})

        dist.barrier()
        ready_at, ready_clock = time.time(), time.perf_counter()
        # rank 0 writes its progress only for a driver that reads it (a file written every 0.3 s)
        watched = rank == 0 and bool(spec.get("progress", True))
        history = train_module(module, x, y, settings, projection, progress if watched else None,
                               RankGroup(rank, world, wrap, all_reduce), teacher=teacher)
        train_s = time.perf_counter() - ready_clock
        # batch-norm running statistics are each rank's own (forward_sync_buffers=False): every
        # rank takes rank 0's, which are what DDP's default per-forward broadcast would have left
        with torch.no_grad():
            for buffer in module.buffers():
                dist.broadcast(buffer, 0)
        digests: list[Any] = [None] * world
        dist.all_gather_object(digests, _digest(module))
        if local_rank == 0:
            with atomic_path(job / "result.pt") as tmp:
                torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, tmp)
        dist.barrier()
        dist.destroy_process_group()
        atomic_write_json(job / f"rank-{rank}.json", {
            "rank": rank, "world": world, "digests": digests, "history": history.to_dict(), "probe": probe,
            "ready_at": ready_at, "train_s": train_s, "samples": settings.epochs * len(y)})
    except BaseException as exc:
        info = {"rank": rank, "type": type(exc).__name__, "sigdl": isinstance(exc, SigdlError),
                "message": getattr(exc, "message", None) or " ".join(str(exc).split())[:300],
                "hint": getattr(exc, "hint", None)}
        with contextlib.suppress(OSError):
            atomic_write_json(job / f"error-{rank}.json", info)
        raise


if __name__ == "__main__":
    _worker(sys.argv[1])
