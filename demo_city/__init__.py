"""Deterministic generator of the fictional Lakeside City (湖滨市) demo feeds.

Entry point: ``python -m demo_city generate --out DIR`` (see docs/DEMO_CITY.md).
"""
VERSION = 1
