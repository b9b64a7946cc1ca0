"""ETL: feed files -> canonical, validated, masked, located records -> the writer database -> a published generation.

Nothing here knows about pages; the dashboard reads only what `core.warehouse.publish` writes.
"""
