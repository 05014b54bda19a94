"""Every docs page's Python examples run as written.

The ```python blocks of a page run in order as one script, in a fresh
interpreter with the test environment (so PostgreSQL examples find
ASYNCSESSION_TEST_PG_URL). A page whose examples need a server that is not
configured says so with ``<!-- docs-test: needs-postgresql -->``; it is skipped
only when PostgreSQL is not configured.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
PAGES = sorted(p for p in DOCS.glob("*.md") if BLOCK.search(p.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    text = page.read_text()
    if "docs-test: needs-postgresql" in text and not os.environ.get("ASYNCSESSION_TEST_PG_URL"):
        pytest.skip("the examples need PostgreSQL (ASYNCSESSION_TEST_PG_URL)")
    script = tmp_path / f"{page.stem}.py"
    script.write_text("\n\n".join(BLOCK.findall(text)))
    # The checkout under test comes first on the path, also when the environment's
    # editable install points at another checkout (a git worktree).
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{page.name} examples failed:\n{done.stdout}\n{done.stderr}"
