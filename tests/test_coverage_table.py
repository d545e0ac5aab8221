"""docs/coverage.md is generated from the code: it must match what the code says now."""

from scripts.coverage_table import OUTPUT, table


def test_coverage_table_is_up_to_date():
    assert OUTPUT.read_text(encoding="utf-8") == table(), "run: python scripts/coverage_table.py"
