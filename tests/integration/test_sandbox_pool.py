"""FunctionPool accounting: warm starts racing each other and cold starts for events.

The batch test function's cold start is slowed (INIT_SLEEP) so that starts overlap.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from localcloud.sandbox import FunctionPool, cpu_sets, lambda_environment
from localcloud.template import Template

from tests.integration.test_gateway import APP

pytestmark = pytest.mark.integration


def make_pool(
    tmp: Path, *, concurrency: int, keep_warm: int, memory: int | None = None
) -> FunctionPool:
    template = Template(APP / "template.yaml", parameters={"OutDir": str(tmp)})
    spec = template.functions()["BatchFunction"]
    if memory is not None:
        spec = dataclasses.replace(spec, memory=memory)
    env = lambda_environment(
        spec, region="us-east-1", account_id="123456789012", endpoint_url=None, overrides={}
    )
    env["INIT_SLEEP"] = "1.5"
    return FunctionPool(
        spec, env, concurrency=concurrency, keep_warm=keep_warm, log_path=tmp / "pool.log"
    )


def settle(pool: FunctionPool, timeout: float = 30) -> list[dict]:
    """The workers once every start has finished (all ready, none starting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = pool.workers()
        if pool._starting == 0 and all(w["init_ms"] is not None for w in workers):
            time.sleep(0.5)  # a start that a bug would still begin shows up by now
            if pool.workers() == workers and pool._starting == 0:
                return workers
        time.sleep(0.1)
    raise TimeoutError(f"pool did not settle: {pool.workers()}")


def wait_until(check, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


def warm_concurrently(pool: FunctionPool, calls: int) -> None:
    threads = [threading.Thread(target=pool.warm) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[FunctionPool]:
    pool = make_pool(tmp_path, concurrency=2, keep_warm=2)
    yield pool
    pool.close()


def test_concurrent_warm_calls_start_exactly_the_pool_size(pool):
    warm_concurrently(pool, 4)
    workers = settle(pool)
    assert len(workers) == 2
    assert len({w["pid"] for w in workers}) == 2


def test_warm_during_a_cold_start_still_fills_the_pool(pool):
    invocation = threading.Thread(target=pool.invoke, args=({"Records": []},))
    invocation.start()
    # The event's worker is starting (slow init) when warm() is called.
    wait_until(lambda: len(pool.workers()) == 1)
    assert pool.workers()[0]["init_ms"] is None
    warm_concurrently(pool, 3)
    invocation.join(30)
    workers = settle(pool)
    assert len(workers) == 2
    assert len({w["pid"] for w in workers}) == 2


def test_a_second_event_starts_a_second_sandbox_while_the_first_cold_starts(tmp_path):
    pool = make_pool(tmp_path, concurrency=2, keep_warm=0)
    try:
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(pool.invoke({"Records": []})))
            for _ in range(2)
        ]
        threads[0].start()
        wait_until(lambda: len(pool.workers()) == 1)
        threads[1].start()  # while the first sandbox is still in its cold start
        # Both cold starts (1.5 s each) run side by side, not one after the other.
        wait_until(lambda: [w["init_ms"] for w in pool.workers()] == [None, None], timeout=10)
        for thread in threads:
            thread.join(30)
        assert [r.ok for r in results] == [True, True]
        assert len(pool.workers()) == 2
    finally:
        pool.close()


def test_cpu_sets_split_the_machine_among_sandboxes_that_want_several_cores():
    # 3,008 MB buys 2 vCPUs: on 2 cores one sandbox runs anywhere, two get a core each.
    assert cpu_sets(3008, 1, [0, 1]) == []
    assert cpu_sets(3008, 2, [0, 1]) == [(0,), (1,)]
    assert cpu_sets(3008, 3, [0, 1]) == [(0,), (1,)]
    # On 8 cores each sandbox gets the 2 cores its memory buys, its own.
    assert cpu_sets(3008, 1, list(range(8))) == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert cpu_sets(3008, 2, [0, 2, 4, 6]) == [(0, 2), (4, 6)]
    # One-vCPU functions (512 MB) are never pinned, nor is anything on one core.
    assert cpu_sets(512, 50, [0, 1]) == []
    assert cpu_sets(3008, 2, [0]) == []


def test_sandboxes_are_pinned_to_their_own_cores(tmp_path):
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.fail("this test needs a machine with at least 2 cores")
    pool = make_pool(tmp_path, concurrency=2, keep_warm=2, memory=3008)
    try:
        pool.warm()
        workers = settle(pool)
        pinned = sorted(tuple(w["cpus"]) for w in workers)
        assert pinned == sorted(pool.cpu_sets[:2])
        # What each worker process may actually run on, read from the kernel.
        assert sorted(tuple(sorted(os.sched_getaffinity(w["pid"]))) for w in workers) == pinned
    finally:
        pool.close()
