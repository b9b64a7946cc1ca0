"""The audit log of who saw and did what: views of records, exports, sign-ins, acknowledgements (ops/acks.py writes
its own entries in the same table). Append-only, in the ops SQLite database shared by every dashboard process."""
import json
import os
import socket
from datetime import UTC, datetime

from ops.acks import _connect


def record(actor: str, action: str, subject: str, detail: dict | None = None, at: datetime | None = None) -> None:
    """Append one entry: `actor` did `action` to `subject` (a record id, a page, a KPI...) with `detail` (JSON)."""
    now = datetime.now(UTC)
    with _connect() as con:
        con.execute("INSERT INTO ops_audit (recorded_at, actor, action, subject, at, detail, host, pid) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (now.isoformat(), actor, action, subject, (at or now).isoformat(),
                     json.dumps(detail or {}, ensure_ascii=False, default=str), socket.gethostname(), os.getpid()))
