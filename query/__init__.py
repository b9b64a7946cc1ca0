"""The one query layer: every figure a page or export shows is computed here, over the published warehouse.

Functions take the caller's scope (None = whole city, else a tuple of district ids) and bind every user value
as a parameter; identifiers come from the schema and config only.
"""
