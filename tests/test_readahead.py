"""etl/readahead: the next chunk is read while the current one is processed, and nothing about the items changes:
order, errors and the closing of the source are those of iterating it directly."""
import threading

import pytest

from etl.readahead import read_ahead


def _source(n, log, fail_at=None, produced=None):
    try:
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"bad chunk {i}")
            log.append(("made", i))
            if produced:
                produced[i].set()
            yield i
    finally:
        log.append(("closed",))


def _reader_threads():
    return [t for t in threading.enumerate() if t.name == "etl-read-ahead"]


def test_items_arrive_in_order_and_the_next_is_read_while_one_is_processed():
    log, produced = [], [threading.Event() for _ in range(6)]
    got = []
    for item in read_ahead(_source(6, log, produced=produced)):
        if item < 5:     # the reader makes the next item while this one is still being handled
            assert produced[item + 1].wait(timeout=10)
        got.append(item)
    assert got == list(range(6))
    assert log[-1] == ("closed",)
    assert not _reader_threads()


def test_an_error_while_reading_is_raised_after_the_items_before_it():
    log, got = [], []
    with pytest.raises(ValueError, match="bad chunk 3"):
        for item in read_ahead(_source(6, log, fail_at=3)):
            got.append(item)  # noqa: PERF402 - the items before the error
    assert got == [0, 1, 2]
    assert ("closed",) in log and not _reader_threads()


def test_a_consumer_that_stops_early_stops_the_reader_and_closes_the_source():
    log = []
    items = read_ahead(_source(1000, log))
    for item in items:
        if item == 2:
            break
    items.close()
    assert log[-1] == ("closed",)
    assert len([e for e in log if e[0] == "made"]) <= 5      # read ahead by one or two, not to the end
    assert not _reader_threads()
