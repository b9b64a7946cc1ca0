"""docs/SCHEMA.md is rendered from core/schema.py; it must not drift from the code."""
from core import schema_doc
from tests.conftest import ROOT


def test_schema_doc_is_current():
    written = (ROOT / "docs" / "SCHEMA.md").read_text(encoding="utf-8")
    assert written == schema_doc.render(), "docs/SCHEMA.md is stale: run `python -m core.schema_doc`"


def test_schema_doc_names_every_table():
    text = schema_doc.render()
    for table in ("fct_incident", "fct_incident_status", "fct_service_case", "dim_sensor", "fct_sensor_reading",
                  "dim_district", "dim_grid", "etl_run", "etl_quarantine", "dim_place"):
        assert f"`{table}`" in text, table
