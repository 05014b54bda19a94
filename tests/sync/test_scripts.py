"""Whole programs on the facade, in fresh interpreters: they run and exit cleanly.

"Cleanly" means exit status 0, nothing on stderr with warnings as errors and
``-X dev`` (no unclosed connection at exit: the facade loop disposes of its
engines when the interpreter exits), and no hang.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FORGETFUL_SCRIPT = textwrap.dedent(
    """
    import sys
    from asyncsession import text
    from asyncsession.sync import Session, create_engine

    engine = create_engine(sys.argv[1])  # never disposed: the exit does it
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    with Session(engine) as session:
        assert session.execute(text("SELECT 2")).scalar() == 2
    print("ok")
    """
)


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_example_script_runs(tmp_path: Path) -> None:
    done = run([str(ROOT / "examples" / "script.py")], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "3 books, 5 copies" in done.stdout


def test_the_facade_loop_shuts_down_at_exit(db_url: str, tmp_path: Path) -> None:
    script = tmp_path / "forgetful.py"
    script.write_text(FORGETFUL_SCRIPT)
    done = run([str(script), db_url], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout == "ok\n"
