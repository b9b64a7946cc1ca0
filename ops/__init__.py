"""Operational state the dashboard writes (acknowledgements of alarms). Not the warehouse: the ETL never reads it,
and it lives in SQLite because several dashboard worker processes write it at once (../shared/notes/STACK.md)."""
