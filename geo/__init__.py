"""Spatial work, done at ETL time: boundaries (load, validate, simplify) and point-in-polygon assignment."""
