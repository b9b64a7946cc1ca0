"""etl/chunk_pool: chunk work in a worker process comes back in the order the chunks were read, and errors come
back as they were raised."""
import os

import pytest

from etl import chunk_pool


def _square_with_pid(chunk, offset):
    if chunk == "bad":
        raise ValueError("bad chunk")
    return chunk * chunk + offset, os.getpid()


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_results_come_back_in_order_from_worker_processes(workers):
    got = list(chunk_pool.in_order(_square_with_pid, (1,), range(40), workers))
    assert [value for value, _ in got] == [i * i + 1 for i in range(40)]
    pids = {pid for _, pid in got}
    assert (pids == {os.getpid()}) if workers == 0 else (os.getpid() not in pids and len(pids) <= workers)


def test_an_error_in_a_worker_is_raised_here_after_the_chunks_before_it():
    got = []
    with pytest.raises(ValueError, match="bad chunk"):
        for value, _ in chunk_pool.in_order(_square_with_pid, (0,), [1, 2, "bad", 4], 1):
            got.append(value)
    assert got == [1, 4]


def _slow_pid(chunk):
    import time
    time.sleep(0.2)
    return os.getpid()


KILLED_PARENT = """
import sys
from etl import chunk_pool
from tests.test_chunk_pool import _slow_pid
for pid in chunk_pool.in_order(_slow_pid, (), range(10_000), 1):
    print(pid, flush=True)
"""


def test_a_worker_ends_when_the_main_process_is_killed():
    """kill -9 of a load must not leave its worker running (it would hold its chunk and CPU forever)."""
    import signal
    import subprocess
    import time

    from tests.conftest import PYTHON, ROOT
    main = subprocess.Popen([PYTHON, "-c", KILLED_PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    worker = int(main.stdout.readline())
    assert worker != main.pid and _alive(worker)
    os.kill(main.pid, signal.SIGKILL)
    main.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"       # a zombie has ended
    except FileNotFoundError:
        return False
