"""Reading the next chunk of a file while the current one is processed. pyarrow's CSV parser and file reads release
the GIL, so a reader thread overlaps them with the pandas and DuckDB work on the chunk before it (the machine has
two cores; the pipeline is otherwise one thread outside DuckDB)."""
import queue
import threading
from collections.abc import Iterator

_END = object()
_POLL_S = 0.1          # how often a blocked reader checks whether the consumer has gone


def read_ahead(items: Iterator, depth: int = 1) -> Iterator:
    """The items of `items` in order, produced by a thread up to `depth` items ahead of the consumer. An exception
    raised while producing is raised here, at the item it stopped at. When the consumer stops early (an error, a
    break), the reader stops too and `items` is closed (its file with it)."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            for item in items:
                if not _put(ready, (item, None), stop):
                    return
            _put(ready, (_END, None), stop)
        except BaseException as exc:     # noqa: BLE001 - handed to the consumer, raised there
            _put(ready, (_END, exc), stop)

    reader = threading.Thread(target=produce, name="etl-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        reader.join()
        close = getattr(items, "close", None)
        if close:
            close()


def _put(ready: queue.Queue, entry, stop: threading.Event) -> bool:
    """Put unless the consumer has stopped; False when it has."""
    while not stop.is_set():
        try:
            ready.put(entry, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False
