"""Named, independent random streams derived from the master seed.

Every consumer asks for a stream by name (plus optional integers such as a
chunk number), so adding a new stream never shifts the numbers of others.
Names are turned into integers with crc32, never hash() (salted per run).
"""
from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, name: str, *extra: int) -> np.random.Generator:
    key = [int(seed), zlib.crc32(name.encode("utf-8")), *map(int, extra)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))
