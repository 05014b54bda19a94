"""docs/sql.md stays true: every example on the page runs and prints what it shows."""

from __future__ import annotations

import doctest
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_sql_page_examples() -> None:
    result = doctest.testfile(
        str(DOCS / "sql.md"),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
        report=True,
    )
    assert result.attempted > 50
    assert result.failed == 0
