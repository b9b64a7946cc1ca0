"""Chunks worked on in worker processes beside the loader.

Mapping, checking, masking and locating a chunk (etl/chunk_work.py) is pandas and Python work that holds the GIL:
in one process it paced every big load, one core doing it while the other waited. Workers take chunks in turn
and give back their results in the file's order; the loader reads ahead and stages results in DuckDB meanwhile.

Workers are forked from a server process that imported the ETL's modules once (multiprocessing's forkserver): a
worker starts in milliseconds, and nothing is forked from the loader, whose DuckDB and reader threads could hold
locks at the moment of a fork. A worker stops when the loader closes its pipe, and when the loader is killed
(kill -9 included: the pipe closes with the process). It ignores Ctrl-C, which the loader handles.

A chunk's records and a result's rows cross as Arrow tables in anonymous shared memory (memfd) whose descriptor is
passed over the pipe: one copy each way, read in place. Pickled through the pipe, a 250k-row chunk of the hotline
(98 MB) cost about 0.5 s of pickling and copying both ways, a third of its work. Anything else is pickled.
"""
import mmap
import multiprocessing
import multiprocessing.forkserver
import os
import pickle
import queue
import signal
import socket
import threading
import traceback
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from multiprocessing import reduction

import pyarrow as pa

from core.errors import FeedError

PRELOAD = ["etl.chunk_work", "geo.locate"]      # imported once by the server, shared by every worker it forks
AHEAD = 2              # chunks a worker holds at most: one it works on, one waiting
_STOP = b"stop"
_context = None


class WorkerDied(FeedError):
    """A worker process ended without an answer (killed, out of memory)."""


def checked(job, chunks: Iterator, workers: int) -> Iterator:
    """(job.run(raw), extra) for each (raw, extra) of chunks, in order; in this process when workers is 0."""
    if workers <= 0:
        for n, (raw, extra) in enumerate(chunks):
            yield job.run(raw, first=n == 0), extra
        return
    with _Pool(job, workers) as pool:
        yield from pool.results(chunks)


def _server_context():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


class _Pool:
    def __init__(self, job, workers: int):
        context = _server_context()
        self._pipes, self._processes = [], []
        try:
            for n in range(workers):
                ours, theirs = context.Pipe()
                process = context.Process(target=_serve, args=(theirs,), name=f"etl-worker-{n}", daemon=True)
                process.start()
                theirs.close()
                self._pipes.append(ours)
                self._processes.append(process)
            for worker, pipe in enumerate(self._pipes):
                try:
                    _send(pipe, job)
                except OSError:
                    raise self._died(worker) from None
        except BaseException:
            self._kill()
            raise

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self._stop()
        else:            # the load failed or was abandoned: no chunk is worth finishing
            self._kill()

    def results(self, chunks: Iterator) -> Iterator:
        """Chunk i goes to worker i mod n; results come back in order, so a worker never holds more than AHEAD."""
        waiting: deque = deque()          # (worker, extra) of the chunks sent, oldest first
        count = len(self._pipes)
        for sent, (raw, extra) in enumerate(chunks):
            if len(waiting) >= AHEAD * count:
                yield self._result(*waiting.popleft())
            worker = sent % count
            try:
                _send(self._pipes[worker], sent == 0, [pa.Table.from_pandas(raw, preserve_index=False)])
            except OSError:
                raise self._died(worker) from None
            waiting.append((worker, extra))
        while waiting:
            yield self._result(*waiting.popleft())

    def _result(self, worker: int, extra):
        try:
            (status, value), tables = _receive(self._pipes[worker])
        except (EOFError, OSError):
            raise self._died(worker) from None
        if status == "error":
            raise value
        return replace(value, rows=tables[0]), extra

    def _died(self, worker: int) -> WorkerDied:
        process = self._processes[worker]
        process.join(timeout=1)
        return WorkerDied(f"ETL worker {worker} stopped without finishing its chunk (exit code {process.exitcode}); "
                          "expected it to end normally: was it killed, or out of memory?")

    def _stop(self) -> None:
        for pipe in self._pipes:
            try:
                pipe.send_bytes(_STOP)
            except OSError:
                pass
        for process in self._processes:
            process.join(timeout=10)
        self._kill()

    def _kill(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.kill()
        for process in self._processes:
            process.join()
        for pipe in self._pipes:
            pipe.close()


def _serve(pipe) -> None:
    """A worker: the job first, then chunks until told to stop or the loader is gone. A thread receives while the
    chunk before is worked on, so the loader never waits to send."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbox: queue.Queue = queue.Queue()

    def receive():
        try:
            while (message := _receive(pipe))[0] is not _STOP:
                inbox.put(message)
        except (EOFError, OSError):       # the loader closed its end, or died
            pass
        inbox.put((_STOP, []))

    threading.Thread(target=receive, name="etl-worker-inbox", daemon=True).start()
    job = inbox.get()[0]             # _STOP when the loader went before sending it
    while job is not _STOP and (message := inbox.get())[0] is not _STOP:
        first, (raw,) = message
        try:
            checked = job.run(raw.to_pandas(), first=first)
            reply, tables = ("ok", replace(checked, rows=None)), [checked.rows]
        except Exception as exc:      # noqa: BLE001 - raised again in the loader, as it would be without workers
            reply, tables = ("error", _portable(exc)), []
        try:
            _send(pipe, reply, tables)
        except OSError:               # the loader has gone
            return


def _portable(exc: Exception) -> Exception:
    """The exception itself where it survives pickling, its text otherwise; with the worker's traceback as a note
    for anything but a feed's own error."""
    if not isinstance(exc, FeedError):
        exc.add_note("in an ETL worker:\n" + "".join(traceback.format_exception(exc)).rstrip())
    try:
        pickle.loads(_dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any failure to round-trip: send the text
        return RuntimeError(f"{type(exc).__name__}: {exc}")


# --- messages: pickles, and Arrow tables in shared memory ------------------------------------------------------

def _dumps(message) -> bytes:
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def _send(pipe, message, tables: list[pa.Table] = ()) -> None:
    """A pickled message, then its Arrow tables as shared memory descriptors."""
    pipe.send_bytes(_dumps((message, len(tables))))
    if tables:
        files = [_shared(table) for table in tables]
        try:
            with socket.fromfd(pipe.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                reduction.sendfds(sock, files)
        finally:
            for fd in files:
                os.close(fd)        # the receiver holds its own descriptors from here


def _receive(pipe) -> tuple[object, list[pa.Table]]:
    data = pipe.recv_bytes()
    if data == _STOP:
        return _STOP, []
    message, count = pickle.loads(data)
    if not count:
        return message, []
    with socket.fromfd(pipe.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        files = reduction.recvfds(sock, count)
    return message, [_mapped(fd) for fd in files]


def _shared(table: pa.Table) -> int:
    """The table as an Arrow IPC stream in a new anonymous shared memory file; its descriptor. Written through the
    file (Arrow writes its buffers straight from memory), not a mapping: no copy in between."""
    fd = os.memfd_create("cityops-chunk", os.MFD_CLOEXEC)
    try:
        with pa.OSFile(f"/proc/self/fd/{fd}", "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _mapped(fd: int) -> pa.Table:
    """The table in a shared memory file, read in place: the mapping lives as long as the table's buffers."""
    try:
        memory = mmap.mmap(fd, os.fstat(fd).st_size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    return pa.ipc.open_stream(pa.py_buffer(memory)).read_all()
