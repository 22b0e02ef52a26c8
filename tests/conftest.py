"""Shared fixtures: the local data folder (NN2HW_DATA), skipped with a reason when absent; and, when
pytest-xdist runs the suite on several workers (``-n 2``), a lock that lets a ``timed`` test run alone."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from nn2hw.paths import DATA_ENV, data_root

if "PYTEST_XDIST_WORKER" in os.environ:
    # Each worker shares the machine's cores with the others: one torch thread each (set before torch
    # is imported; subprocesses inherit it), as torch's spinning thread pools oversubscribed run
    # small ops many times slower. A value the user set is kept.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("NN2HW_THREADS", "1")


_RUNS: set[str] = set()
"""The xdist run ids whose lock files the controller removes when the run ends."""


def _lock_path(run_id: str, suffix: str) -> Path:
    return Path(tempfile.gettempdir()) / f"nn2hw-tests-{run_id}.{suffix}"


def _locked(path: Path, mode: int) -> int:
    """A descriptor of ``path`` (created if absent) holding an advisory lock; closing it releases it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, mode)
    return fd


@contextmanager
def _cpu_turn(run_id: str, alone: bool) -> Iterator[None]:
    """A readers-writer lock across the workers of one run: a ``timed`` test holds the CPU exclusively,
    any other test shares it. A writer waits for the CPU holding the turnstile, so tests that start
    after it queue behind it instead of starving it."""
    turnstile = _locked(_lock_path(run_id, "turn"), fcntl.LOCK_EX)
    try:
        cpu = _locked(_lock_path(run_id, "cpu"), fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
    finally:
        os.close(turnstile)
    try:
        yield
    finally:
        os.close(cpu)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Under pytest-xdist, run each ``timed`` test (it measures time on the CPU: latencies, their
    ratios, heartbeats) with no other test running beside it; other tests share the CPU."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id is None:  # one process: nothing runs beside any test
        yield
        return
    with _cpu_turn(run_id, alone=item.get_closest_marker("timed") is not None):
        yield


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """On the xdist controller: the run id its workers lock under (``_cpu_turn``)."""
    _RUNS.add(node.workerinput["testrunuid"])


def pytest_unconfigure(config: pytest.Config) -> None:
    """On the xdist controller, once every worker is done: remove the run's lock files."""
    for run_id in _RUNS:
        for suffix in ("turn", "cpu"):
            _lock_path(run_id, suffix).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder named by NN2HW_DATA (the project's ../shared/data in CI)."""
    root = data_root()
    if root is None or not root.is_dir():
        pytest.skip(f"{DATA_ENV} is not set to an existing folder; set it to the shared data folder "
                    f"(e.g. {DATA_ENV}=../shared/data) to run the tests that need real data")
    return root


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory: pytest.TempPathFactory):
    """A fresh NN2HW_CACHE for one test module (its measurements and predictors shared by its tests)."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("cache")
        mp.setenv("NN2HW_CACHE", str(path))
        yield path


@pytest.fixture(scope="session")
def partial_cifar_scorer(shared_data: Path):
    """An evaluator for quick real searches: ResNet-20's top-1 on 64 images of the partial CIFAR-10
    test split, no training (deterministic)."""
    from nn2hw import zoo
    from nn2hw.data import load_dataset
    from nn2hw.evaluate import test

    data = zoo.prepare(load_dataset("cifar10", "test-partial"), "resnet20").take(64)

    def score(model):
        m = test(model, data, progress=False)
        return {"top1": m.top1, "top5": m.top5, "n_images": float(m.n_images), "partial": 1.0}

    return score


@pytest.fixture(scope="session")
def predictor_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder (for NN2HW_CACHE) holding a small whole-network predictor under the names the
    ``predictor`` template lists and the ``cpu`` template looks up for this machine, fitted on
    channel-cut variants of the test conv net with latencies proportional to their MACs plus a fixed
    overhead: enough for the template contract, without building a kernel predictor."""
    pytest.importorskip("sklearn", reason="the predictor templates need scikit-learn (pip install 'nn2hw[predict]')")
    from nn2hw.compress import apply_plan, with_uniform_cut
    from nn2hw.hardware.cpu import RUNTIMES, default_predictor_name
    from nn2hw.plan import Plan
    from nn2hw.predict import fit
    from nn2hw.testing.workloads import conv_net, every_op

    base = conv_net()
    from nn2hw.hardware.predicted import EXECUTION

    workloads = [every_op(EXECUTION), base]
    for keep in (0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9):
        workloads.append(apply_plan(with_uniform_cut(Plan.for_workload(base, base.name), base, keep), base))
    latencies = [0.05 + w.macs * 1e-7 for w in workloads]
    predictor = fit(workloads, latencies, device="test", seed=0)
    folder = tmp_path_factory.mktemp("nn2hw-cache")
    for name in ("test-device", *(default_predictor_name(runtime, 1) for runtime in RUNTIMES)):
        predictor.save(folder / "predictors" / f"{name}.json")
    return folder
