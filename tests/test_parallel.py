"""Work on an executor: sharded re-testing on a real process pool and a real Dask LocalCluster."""

from __future__ import annotations

import pytest

from sigdl_core.errors import InvalidValueError
from sigdl_core.parallel import map_ordered, open_executor, sharded_accuracy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained():
    pytest.importorskip("sigdl_framework_torch")
    pytest.importorskip("sigdl_datasets")
    from sigdl_core.interfaces import TrainSettings
    from sigdl_datasets.loaders import load_digits
    from sigdl_framework_torch.framework import TorchFramework

    fw = TorchFramework()
    data = load_digits(None, 0)
    model = fw.build("lenet300100", (1, 8, 8), 10, seed=1)
    fw.train(model, data, TrainSettings(epochs=1, seed=1))
    return fw, model, data


@pytest.fixture(scope="module")
def local_cluster():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                                       dashboard_address=None)
    yield cluster
    cluster.close()


def test_sharded_accuracy_on_a_process_pool_equals_serial_exactly(trained) -> None:
    fw, model, data = trained
    serial = fw.evaluate(model, data, "test")
    with open_executor(jobs=2) as pool:
        sharded = sharded_accuracy(fw, model, data, "test", pool, shards=3, suffix=".pt")
    assert sharded == serial  # the same counts over the same n: equal floats, not merely close
    if serial.correct is not None:  # and the same per-sample hits, in the split's order
        assert (sharded.correct == serial.correct).all()
    assert sharded_accuracy(fw, model, data, "test", None, shards=4, suffix=".pt") == serial


def test_sharded_accuracy_on_a_dask_local_cluster_equals_serial_exactly(trained, local_cluster) -> None:
    fw, model, data = trained
    with open_executor(cluster=local_cluster.scheduler_address) as executor:
        sharded = sharded_accuracy(fw, model, data, "test", executor, shards=2, suffix=".pt")
    assert sharded == fw.evaluate(model, data, "test")


def test_results_come_back_in_submission_order_and_bad_settings_are_one_line() -> None:
    with open_executor(jobs=2) as pool:
        assert map_ordered(pool, pow, [(2, k) for k in range(6)]) == [2**k for k in range(6)]
    with pytest.raises(InvalidValueError, match="jobs=0"):
        with open_executor(jobs=0):
            pass
    from sigdl_core.errors import BadInputError

    with pytest.raises(BadInputError, match="cannot reach the Dask scheduler"):
        with open_executor(cluster="tcp://127.0.0.1:9", connect_timeout_s=2):
            pass


def _dies_once(marker: str, k: int) -> int:
    """Kills its own process the first time any task runs it (the marker file says so)."""
    import os
    import signal
    from pathlib import Path

    path = Path(marker)
    if not path.exists():
        path.write_text("died")
        os.kill(os.getpid(), signal.SIGKILL)
    return k * k


def test_a_pool_process_lost_mid_task_has_its_tasks_resubmitted(tmp_path) -> None:
    from sigdl_core.parallel import Submitter, local_pool

    pool = local_pool(2)
    submitter = Submitter(pool)
    try:
        tickets = [submitter.submit(_dies_once, str(tmp_path / "died"), k) for k in range(4)]
        assert [submitter.result(t) for t in tickets] == [0, 1, 4, 9]
        assert submitter.rebuilt == 1 and submitter.busy() == 0
    finally:
        submitter.close()
        pool.shutdown()
