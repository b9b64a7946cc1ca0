"""The per-chunk work of a large file (map, check, mask, locate) in a worker process, while the main process reads
the file and stages what the worker returns. That work holds the GIL and the machine has two cores: in one process
the second core idled through it. Small files stay in the main process: starting a worker (a fresh interpreter
importing pandas, geopandas and the config) costs about 2 s.

Chunks come back in the order they were read. A worker is a fresh interpreter (`spawn`: nothing of the main
process is forked, not DuckDB's threads nor its connection) and is killed by the kernel when the main process ends,
even by kill -9 (Linux's parent-death signal): a busy worker would otherwise finish its chunk and block on the
full result pipe forever."""
import ctypes
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

_task: tuple | None = None       # in a worker: (function, its fixed arguments)


def _begin(task: tuple, parent: int) -> None:
    global _task
    _die_with(parent)
    _task = task


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when its parent ends (Linux; elsewhere the worker ends when its pipes do)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:       # the parent ended before prctl took effect
        os._exit(1)


PR_SET_PDEATHSIG = 1


def _run(chunk):
    work, args = _task
    return work(chunk, *args)


def in_order(work: Callable, args: tuple, chunks: Iterable, workers: int, ahead: int = 2) -> Iterator:
    """work(chunk, *args) for each chunk, in the chunks' order. workers 0: here, one after the other. Otherwise in
    that many worker processes, with up to `workers + ahead` chunks handed out before the oldest is waited for."""
    if workers == 0:
        for chunk in chunks:
            yield work(chunk, *args)
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_begin, initargs=((work, args), os.getpid()))
    pending: deque = deque()
    try:
        for chunk in chunks:
            pending.append(pool.submit(_run, chunk))
            if len(pending) > workers + ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
