"""One file through the pipeline: extract -> map -> validate -> mask -> locate -> stage, chunk by chunk, then
merge in one transaction, then publish. A load killed at any point leaves the last published generation untouched
and the canonical tables, quarantine and run counts as they were before the load: staged chunks live in an
in-memory scratch database (etl/staging.py) that only the final transaction reads; DuckDB rolls back an open
transaction."""
import hashlib
import itertools
import os
import sys
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from core import clock
from core.errors import FeedError
from etl import chunk_work, extract, merge, staging, validate
from etl import workers as etl_workers
from etl.keys import pii_key
from etl.readahead import read_ahead


@dataclass
class Outcome:
    feed_id: str
    file: str
    run_id: int | None = None
    status: str = "ok"
    counts: dict = field(default_factory=lambda: dict(read=0, inserted=0, updated=0, merged=0, quarantined=0))
    seconds: float = 0.0
    error: str | None = None

    def line(self) -> str:
        c = self.counts
        return (f"{self.feed_id:<18} {Path(self.file).name:<32} {self.status:<9} read={c['read']:,} "
                f"inserted={c['inserted']:,} updated={c['updated']:,} merged={c['merged']:,} "
                f"quarantined={c['quarantined']:,} in {self.seconds:.1f}s" + (f"  {self.error}" if self.error else ""))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def already_loaded(con, feed_id: str, sha: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM etl_run WHERE feed_id = ? AND file_sha256 = ? AND status = 'ok'",
                            [feed_id, sha]).fetchall()[0][0])


def mark_abandoned(con) -> None:
    """Runs left 'running' by a process that no longer exists were killed: record that."""
    for run_id, pid in con.execute("SELECT run_id, pid FROM etl_run WHERE status = 'running'").fetchall():
        if pid is None or not _alive(pid):
            con.execute("UPDATE etl_run SET status = 'aborted', error = 'process ended before commit' "
                        "WHERE run_id = ?", [run_id])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def load_file(con, config, feed, path: Path, locator, force: bool = False, progress=None) -> Outcome:
    outcome = Outcome(feed.id, str(path))
    sha = None
    if not force and path_loaded(con, feed.id, path):     # a re-sent export: hashed first, skipped unread if equal
        sha = file_sha256(path)
        if already_loaded(con, feed.id, sha):
            outcome.status = "unchanged"
            return outcome
    digest = Digest(path, sha)
    started = time.monotonic()
    outcome.run_id = con.execute("SELECT nextval('etl_run_seq')").fetchall()[0][0]
    con.execute("INSERT INTO etl_run (run_id, feed_id, file, file_sha256, started_at, status, pid) "
                "VALUES (?, ?, ?, ?, now(), 'running', ?)", [outcome.run_id, feed.id, str(path), sha, os.getpid()])
    staging.attach(con)
    stage = staging.Stage(con, outcome.run_id, feed.id, feed.entity)
    try:
        _stage_file(con, config, feed, path, locator, stage, outcome, progress, started)
        if not force and already_loaded(con, feed.id, digest.value()):    # a loaded file under a new name
            con.execute("DELETE FROM etl_run WHERE run_id = ?", [outcome.run_id])
            return Outcome(feed.id, str(path), status="unchanged")
        _merge_staged(con, feed, path, stage, outcome)
        outcome.seconds = time.monotonic() - started
        commit_run(con, outcome, digest.value())
    except Exception as exc:
        _end(progress)
        fail_run(con, outcome, exc, started)
        raise
    finally:
        stage.drop()
    return outcome


def path_loaded(con, feed_id: str, path: Path) -> bool:
    return bool(con.execute("SELECT count(*) FROM etl_run WHERE feed_id = ? AND file = ? AND status = 'ok'",
                            [feed_id, str(path)]).fetchall()[0][0])


class Digest:
    """A file's SHA-256, computed by a thread while the file loads (file reads and hashlib release the GIL: at 50M
    readings the 2 GB file took 2.0 s of the main thread's 42 s before). Given when already known."""

    def __init__(self, path: Path, known: str | None = None):
        self._path = path
        self._result: list = [known] if known else []
        self._thread = None if known else threading.Thread(target=self._compute, args=(path,), daemon=True,
                                                            name="etl-sha256")
        if self._thread:
            self._thread.start()

    def _compute(self, path: Path) -> None:
        try:
            self._result.append(file_sha256(path))
        except OSError as exc:
            self._result.append(exc)

    def value(self) -> str:
        if self._thread:
            self._thread.join()
        if isinstance(self._result[0], OSError):
            raise FeedError(f"{self._path}: could not be read to the end "
                            f"({self._result[0].strerror}); expected the file to stay in place while it loads")
        return self._result[0]


def _stage_file(con, config, feed, path, locator, stage, outcome, progress, started) -> None:
    """Every chunk checked, masked, located and appended to the run's staging tables, each in its own commit."""
    size = path.stat().st_size
    reading, shown = extract.Position(size), extract.Position(size)
    # The reader runs ahead: each chunk carries how far the file was read when it was made, for the progress line.
    chunks = read_ahead((raw, reading.done) for raw in extract.read(path, feed.source,
                                                                   config.settings.etl.chunk_rows, reading))
    # On an error, the reader stops and the file closes now, not when collected; so do the workers.
    with closing(chunks):
        first = next(chunks, None)
        if first is not None:
            # the file's size in chunks, from the share of it the first one took (unknown: one)
            workers = _workers(config, feed, size / first[1] if first[1] > 0 else 1)
            context = validate.Context(clock.now(config), locator, config.catalog, con)
            job = chunk_work.ChunkJob(config, feed, path, context.detached() if workers else context,
                                      pii_key(config), outcome.run_id)
            with closing(etl_workers.checked(job, itertools.chain([first], chunks), workers)) as results:
                _stage_results(results, stage, outcome, progress, started, shown)
    _end(progress)


def _stage_results(results, stage, outcome, progress, started, shown) -> None:
    for checked, done in results:
        _stage_chunk(stage, outcome, checked)
        shown.done = done
        if progress:
            progress(outcome, time.monotonic() - started, shown)


def _workers(config, feed, chunks: float) -> int:
    """Worker processes for a file of about this many chunks: none below etl.workers_from_chunks or without memfd
    (Linux only), else the feed's own number or etl.workers."""
    if chunks < config.settings.etl.workers_from_chunks or not hasattr(os, "memfd_create"):
        return 0
    return config.settings.etl.workers if feed.source.workers is None else feed.source.workers


def _stage_chunk(stage, outcome: Outcome, checked: chunk_work.Checked) -> None:
    stage.append_quarantine(checked.quarantine)
    stage.append_rows(checked.rows)
    outcome.counts["read"] += checked.read
    outcome.counts["quarantined"] += checked.quarantined


def _merge_staged(con, feed, path, stage, outcome) -> None:
    """Open the load's one transaction: the file's quarantine replaced, its rows merged (committed by commit_run).
    The keys read more than once and the rows they supersede are listed before it: that writes to the scratch
    database, and one transaction may write to one database only."""
    con.execute(f"CREATE OR REPLACE TABLE {stage.repeated} AS {merge.repeated_sql(stage.staged, feed.entity)}")
    con.execute(f"CREATE OR REPLACE TABLE {stage.superseded} AS "
                f"{merge.superseded_sql(stage.staged, stage.repeated, feed.entity)}")
    batch = f"(SELECT * FROM {stage.rows} ANTI JOIN {stage.superseded} USING ({staging.SEQ}))"
    columns = list(stage.provided)
    if feed.entity == "incidents":
        columns += [c for c in merge.VERSION_TIMES if c not in columns]
    con.execute("BEGIN TRANSACTION")
    con.execute("DELETE FROM etl_quarantine WHERE feed_id = ? AND file = ?", [feed.id, str(path)])
    con.execute(f"INSERT INTO etl_quarantine SELECT * FROM {stage.quarantine}")
    counts = merge.merge_staged(con, stage.rows, batch, feed.entity, columns, stage.repeated)
    for name, value in counts.items():
        outcome.counts[name] += value


def commit_run(con, outcome: Outcome, sha: str | None = None) -> None:
    """Record a run's counts (and its file's hash, where it was computed during the load) in the run log and commit
    its transaction (the run row was written before it)."""
    c = outcome.counts
    con.execute("UPDATE etl_run SET status = 'ok', finished_at = now(), rows_read = ?, rows_inserted = ?, "
                "rows_updated = ?, rows_merged = ?, rows_quarantined = ?, duration_s = ?, "
                "file_sha256 = coalesce(?, file_sha256) WHERE run_id = ?",
                [c["read"], c["inserted"], c["updated"], c["merged"], c["quarantined"], outcome.seconds, sha,
                 outcome.run_id])
    con.execute("COMMIT")


def fail_run(con, outcome: Outcome, exc: Exception, started: float) -> None:
    """Roll a run's transaction back (if it got that far) and record why in the run log."""
    _rollback(con)
    outcome.status, outcome.error = "failed", str(exc)
    outcome.seconds = time.monotonic() - started
    con.execute("UPDATE etl_run SET status = 'failed', finished_at = now(), error = ?, duration_s = ? "
                "WHERE run_id = ?", [str(exc), outcome.seconds, outcome.run_id])


def _rollback(con) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.TransactionException:     # failed while staging: no transaction was open, nothing to undo
        pass


def _end(progress) -> None:
    end = getattr(progress, "end", None)
    if end:
        end()


class ProgressPrinter:
    """Rows read, rows/s and an ETA from the bytes read against the file's size, after every chunk.
    On a terminal: one line updated in place. Otherwise (`--progress` into a pipe or a log): one line per chunk."""

    def __init__(self, stream, tty: bool):
        self.stream = stream
        self.tty = tty

    def __call__(self, outcome: Outcome, elapsed: float, position) -> None:
        rows = outcome.counts["read"]
        rate = rows / elapsed if elapsed > 0 else 0.0
        share = position.done / position.size if position.size else 1.0
        eta = elapsed * (1 - share) / share if share > 0 else None
        text = (f"{outcome.feed_id}: {rows:,} rows, {rate:,.0f} rows/s, {share:.1%} of {_size(position.size)}, "
                f"ETA {_duration(eta)}")
        self.stream.write(f"\r\033[K  {text}" if self.tty else f"progress {text}\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _size(size: float) -> str:
    if size < 1000:
        return f"{size:.0f} B"
    for unit in ("KB", "MB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:,.1f} GB"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_printer(stream=sys.stderr, force: bool = False) -> ProgressPrinter | None:
    """Progress on `stream` when it is a terminal, or always with force (the CLI's --progress)."""
    tty = stream.isatty()
    return ProgressPrinter(stream, tty) if tty or force else None
