"""Failed sign-ins, counted per account and per address across every dashboard process (the ops SQLite database),
so that guessing passwords is slowed down whichever worker a request reaches."""
import time

from ops.acks import _connect

ADDRESS_FACTOR = 4     # an address (perhaps a whole office behind one proxy) may fail this many times more


def _keys(username: str, address: str) -> list[str]:
    return [f"user:{username.lower()[:64]}", f"ip:{address}"]


def locked_for(username: str, address: str, max_failures: int, window_s: float) -> float:
    """Seconds until another attempt is allowed for this account or address (0: allowed now)."""
    now = time.time()
    wait = 0.0
    with _connect() as con:
        for key, limit in zip(_keys(username, address), (max_failures, max_failures * ADDRESS_FACTOR)):
            rows = con.execute("SELECT at FROM signin_failure WHERE key = ? AND at > ? ORDER BY at DESC LIMIT ?",
                               (key, now - window_s, limit)).fetchall()
            if len(rows) >= limit:
                wait = max(wait, rows[-1][0] + window_s - now)
    return wait


def failed(username: str, address: str, window_s: float) -> None:
    now = time.time()
    with _connect() as con:
        con.execute("BEGIN IMMEDIATE")
        con.execute("DELETE FROM signin_failure WHERE at < ?", (now - window_s,))
        con.executemany("INSERT INTO signin_failure (key, at) VALUES (?, ?)",
                        [(key, now) for key in _keys(username, address)])
        con.execute("COMMIT")


def succeeded(username: str) -> None:
    """A correct password clears the account's count (not the address's: one user's success does not unlock
    an address that is guessing other accounts)."""
    with _connect() as con:
        con.execute("DELETE FROM signin_failure WHERE key = ?", (_keys(username, "")[0],))
