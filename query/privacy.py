"""Small-number suppression: a published figure that counts fewer than k records (settings `privacy.min_records`)
is not shown on a shared screen or in an export, only "< k".

A *shared screen* is a kiosk account (a wall anyone in the room reads) or no signed-in user at all: the export job,
scheduled snapshots and anything else running outside a user's request. Both are treated the same everywhere:
`shared_screen()` is the one test.

The records a figure counts, by kind (query/kpis.py):
- count:     the records counted (its value, `numerator`): "3 repeat complaints in Old Town" names few people;
- ratio:     the records measured (`used`, the denominator): a share of 3 records discloses each of them;
- quantile:  the records measured (`used`): a median of 2 closing times is nearly the times themselves;
- composite: none of its own (a weighted mean of other KPIs' value/target): never suppressed itself; where its
             components are shown, each is judged on its own figure.
A figure without a value (no data) has nothing to suppress, and a count of 0 records is published (see small()).
"""
from dataclasses import replace

from query import store


def min_records() -> int:
    return store.config().settings.privacy.min_records


def shared_screen() -> bool:
    """True for a kiosk account, and when nobody is signed in (exports, snapshots, code outside a request)."""
    user = store.caller()
    return user is None or bool(user.kiosk)


def counted(figure) -> int | None:
    """The number of records the figure's value rests on (None: a composite, which counts no records itself)."""
    kind = store.config().kpis[figure.kpi_id].kind
    if kind == "composite":
        return None
    if kind == "count":
        return figure.numerator if figure.numerator is not None else figure.used
    return figure.used


def small(figure, k: int | None = None) -> bool:
    """The figure counts 1 to k-1 records (whoever looks at it). Zero is published: it names nobody, and hiding it
    would hide good news ("no overdue cases"); a share or quantile of zero records has no value anyway."""
    if figure is None or figure.value is None:
        return False
    n = counted(figure)
    return n is not None and 0 < n < (min_records() if k is None else k)


def suppressed(figure, shared: bool | None = None, k: int | None = None) -> bool:
    """Whether this figure must be shown as "< k": it counts fewer than k records and is shown on a shared screen
    (`shared` overrides the caller test, e.g. for an export made by a signed-in user)."""
    if not (shared_screen() if shared is None else shared):
        return False
    return small(figure, k)


def ranking(rows, shared: bool | None = None, k: int | None = None) -> list:
    """A ranking (query.kpis.ranking) as it may be published: suppressed districts lose their rank and move after
    those with a published value (their position would bound their value); the others are ranked among
    themselves (1, 2, 2, 4 on ties). Each row says whether it is suppressed."""
    shared = shared_screen() if shared is None else shared
    flagged = [(row, suppressed(row.figure, shared, k)) for row in rows]
    shown = [row for row, hidden in flagged if not hidden and row.rank is not None]
    rest = [(row, hidden) for row, hidden in flagged if hidden or row.rank is None]
    out, previous, rank = [], object(), None
    for i, row in enumerate(shown, start=1):
        if row.figure.value != previous:
            rank, previous = i, row.figure.value
        out.append(replace(row, rank=rank, suppressed=False))
    # Without a value first, then suppressed ones, each by district id: nothing in their order tells a value.
    rest.sort(key=lambda r: (r[1], r[0].district_id))
    out += [replace(row, rank=None, suppressed=hidden) for row, hidden in rest]
    return out


def district_measure(rows: list[dict], shared: bool | None = None) -> list[dict]:
    """The wall's district shading (query.layers.district_measure) as it may be shown: on a shared screen a share
    or mean resting on 1 to k-1 records loses its value (the district is left unshaded)."""
    if not (shared_screen() if shared is None else shared):
        return rows
    k = min_records()
    return [{**r, "value": None} if r["records"] is not None and 0 < r["records"] < k else r for r in rows]


__all__ = ["counted", "district_measure", "min_records", "ranking", "shared_screen", "small", "suppressed"]
