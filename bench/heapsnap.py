"""What a page's JS heap gained between two V8 heap snapshots of the same page (HeapProfiler.takeHeapSnapshot).

    python -m bench.heapsnap BEFORE.heapsnapshot AFTER.heapsnapshot [--top 25]

V8 keeps an object's snapshot id for the life of the page, so "new" objects are those of the later snapshot whose id
the earlier one does not hold, and that survived the GC the snapshot forces. Reported:

1. counts and self bytes by constructor, before and after (what `bench.wall_soak --heap-snapshots` prints);
2. the new objects grouped by the OLD object that holds them: each new object is walked up its retainers (a
   breadth-first tree from the GC roots over strong edges) until an object that existed before; the path from
   there (`Owner.edge.edge`) names who keeps the growth. A steady state shows only replaced figure data here
   (held by the graph's div, the Dash store's layout); a leak shows one owner gaining in every interval.
"""
from __future__ import annotations

import argparse
import json
from collections import deque
from pathlib import Path


class Snapshot:
    def __init__(self, path: Path):
        snap = json.loads(Path(path).read_text())
        meta = snap["snapshot"]["meta"]
        self.nf, self.ef = meta["node_fields"], meta["edge_fields"]
        self.node_types, self.edge_types = meta["node_types"][0], meta["edge_types"][0]
        self.strings, self.nodes, self.edges = snap["strings"], snap["nodes"], snap["edges"]
        self.w, self.ew = len(self.nf), len(self.ef)
        self.count = len(self.nodes) // self.w
        n = self.nodes
        t_at, id_at, ec_at = self.nf.index("type"), self.nf.index("id"), self.nf.index("edge_count")
        self.ids = [n[i * self.w + id_at] for i in range(self.count)]
        self.first_edge = [0] * (self.count + 1)
        for i in range(self.count):
            self.first_edge[i + 1] = self.first_edge[i] + n[i * self.w + ec_at] * self.ew
        self._t, self._name, self._size = t_at, self.nf.index("name"), self.nf.index("self_size")
        self._det = self.nf.index("detachedness") if "detachedness" in self.nf else None

    def kind(self, i: int) -> str:
        return self.node_types[self.nodes[i * self.w + self._t]]

    def name(self, i: int) -> str:
        kind = self.kind(i)
        raw = self.strings[self.nodes[i * self.w + self._name]]
        return raw[:80] if kind in ("object", "closure", "native") else f"({kind})"

    def size(self, i: int) -> int:
        return self.nodes[i * self.w + self._size]

    def detached(self, i: int) -> bool:
        return self._det is not None and self.nodes[i * self.w + self._det] == 2

    def out_edges(self, i: int):
        e = self.edges
        for j in range(self.first_edge[i], self.first_edge[i + 1], self.ew):
            etype = self.edge_types[e[j]]
            label = e[j + 1]
            label = str(label) if etype in ("element", "hidden") else self.strings[label]
            yield etype, label, e[j + 2] // self.w

    def by_constructor(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i in range(self.count):
            entry = out.setdefault(self.name(i), [0, 0])
            entry[0] += 1
            entry[1] += self.size(i)
        return out

    def bfs_parents(self) -> tuple[list[int], list[str]]:
        """A shortest-path retainer tree from the root (node 0) over strong edges."""
        parent, via = [-1] * self.count, [""] * self.count
        seen = bytearray(self.count)
        seen[0] = 1
        queue = deque([0])
        while queue:
            i = queue.popleft()
            for etype, label, j in self.out_edges(i):
                if etype in ("weak", "shortcut") or seen[j]:
                    continue
                seen[j] = 1
                parent[j], via[j] = i, label if etype != "element" else f"[{label}]"
                queue.append(j)
        return parent, via


    def path(self, i: int, parent: list[int], via: list[str], depth: int = 14) -> str:
        """The retainer path from the root, shortest first: Window.foo.bar[] ... (element indices as [])."""
        parts = []
        while i > 0 and len(parts) < depth:
            label = via[i]
            parts.append("[]" if label.startswith("[") else label)
            i = parent[i]
            if parent[i] <= 0:
                parts.append(self.name(i))
                break
        return ".".join(reversed(parts))


def by_path(snap: Snapshot, parent: list[int], via: list[str], depth: int) -> dict[str, list[int]]:
    """Count and self bytes of every object by the last `depth` steps of its retainer path (indices as [])."""
    out: dict[str, list[int]] = {}
    memo: dict[int, tuple] = {}

    def tail(i: int) -> tuple:
        if i <= 0:
            return ()
        if i in memo:
            return memo[i]
        label = via[i]
        up = tail(parent[i]) if parent[i] > 0 else (snap.name(i),)
        memo[i] = t = (up + ("[]" if label.startswith("[") else label,))[-depth:]
        return t

    import sys
    sys.setrecursionlimit(100_000)
    for i in range(1, snap.count):
        if parent[i] < 0:
            continue
        key = ".".join(tail(i)) + " -> " + snap.name(i)[:40]
        entry = out.setdefault(key, [0, 0])
        entry[0] += 1
        entry[1] += snap.size(i)
    return out


def growing(a: Snapshot, b: Snapshot, parent: list[int], via: list[str], top: int) -> list[dict]:
    """Objects that exist in both snapshots and hold more edges (elements, properties, listeners) in the later one:
    a growing array, map or listener list shows here whatever it holds."""
    ec = a.nf.index("edge_count")
    before = {a.ids[i]: a.nodes[i * a.w + ec] for i in range(a.count)}
    rows = []
    for i in range(b.count):
        old = before.get(b.ids[i])
        new = b.nodes[i * b.w + ec]
        if old is not None and new - old > 0:
            rows.append((new - old, i, old, new))
    rows.sort(reverse=True)
    return [{"object": f"{b.name(i)}@{b.ids[i]}", "edges_before": old, "edges_after": new, "path": b.path(i, parent, via)}
            for _, i, old, new in rows[:top]]


def diff(before: Path, after: Path, top: int = 25) -> dict:
    a, b = Snapshot(before), Snapshot(after)
    ca, cb = a.by_constructor(), b.by_constructor()
    grown = sorted(({"constructor": k, "count": cb.get(k, [0, 0])[0] - ca.get(k, [0, 0])[0],
                     "bytes": cb.get(k, [0, 0])[1] - ca.get(k, [0, 0])[1]} for k in set(ca) | set(cb)),
                   key=lambda r: -r["bytes"])
    old_ids = set(a.ids)
    parent, via = b.bfs_parents()
    owners: dict[str, list[int]] = {}
    new_total = [0, 0]
    detached_new = 0
    for i in range(b.count):
        if b.ids[i] in old_ids or parent[i] < 0 and i != 0:
            continue
        new_total[0] += 1
        new_total[1] += b.size(i)
        detached_new += b.detached(i)
        path, j = [], i
        while j > 0 and b.ids[j] not in old_ids and len(path) < 12:
            path.append(via[j])
            j = parent[j]
        key = f"{b.name(j)}@{b.ids[j]}." + ".".join(reversed(path[-3:]))
        entry = owners.setdefault(key, [0, 0])
        entry[0] += 1
        entry[1] += b.size(i)
    held = sorted(({"owner_path": k, "objects": v[0], "bytes": v[1]} for k, v in owners.items()),
                  key=lambda r: -r["bytes"])
    pa, va = a.bfs_parents()
    path_a, path_b = by_path(a, pa, va, 4), by_path(b, parent, via, 4)
    paths = sorted(({"path": k, "count": path_b.get(k, [0, 0])[0] - path_a.get(k, [0, 0])[0],
                     "bytes": path_b.get(k, [0, 0])[1] - path_a.get(k, [0, 0])[1],
                     "count_after": path_b.get(k, [0, 0])[0]} for k in set(path_a) | set(path_b)),
                   key=lambda r: -r["bytes"])
    total = (sum(v[1] for v in ca.values()), sum(v[1] for v in cb.values()))
    return {"before_bytes": total[0], "after_bytes": total[1], "before_nodes": a.count, "after_nodes": b.count,
            "new_reachable": {"objects": new_total[0], "bytes": new_total[1], "detached_dom": detached_new},
            "grown_by_constructor": grown[:top], "new_objects_by_old_owner": held[:top],
            "growing_objects": growing(a, b, parent, via, top), "grown_by_path": paths[:top]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.heapsnap", description=__doc__.split("\n\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args(argv)
    out = diff(Path(args.before), Path(args.after), args.top)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"heap {out['before_bytes'] / 2**20:.2f} -> {out['after_bytes'] / 2**20:.2f} MiB, "
          f"objects {out['before_nodes']:,} -> {out['after_nodes']:,}; new and reachable: "
          f"{out['new_reachable']['objects']:,} objects, {out['new_reachable']['bytes'] / 2**20:.2f} MiB, "
          f"{out['new_reachable']['detached_dom']} detached DOM")
    print("\ngrown by constructor (count, self bytes):")
    for r in out["grown_by_constructor"]:
        print(f"  {r['constructor'][:70]:<70} {r['count']:>+8} {r['bytes']:>+12,}")
    print("\nnew objects by the old object holding them (owner@id.path):")
    for r in out["new_objects_by_old_owner"]:
        print(f"  {r['owner_path'][:100]:<100} {r['objects']:>8} {r['bytes']:>12,}")
    print("\ngrown by the last steps of the retainer path (count, self bytes, count after):")
    for r in out["grown_by_path"]:
        print(f"  {r['path'][:130]:<130} {r['count']:>+7} {r['bytes']:>+10,} {r['count_after']:>7}")
    print("\nobjects of both snapshots holding more edges in the later one (before -> after, path from the root):")
    for r in out["growing_objects"]:
        print(f"  {r['object'][:40]:<40} {r['edges_before']:>6} -> {r['edges_after']:<6} {r['path'][:160]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
