"""The figures the README and docs quote still come out of their commands: the cheap
ones rerun here (`benchmarks/docs_figures.py --cheap --check`), all of them with
`make docs-figures`. A documented number that no longer comes out fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "docs_figures.py"

pytestmark = pytest.mark.slow


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--check", *args], capture_output=True,
                          text=True, timeout=900, cwd=ROOT)


def test_the_cheap_figures_come_out_as_documented() -> None:
    done = _check("--cheap")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "readme-thousand-clients: unchanged" in done.stdout
    assert "secagg-exchanges: unchanged" in done.stdout


def test_a_documented_number_that_no_longer_comes_out_fails(tmp_path: Path) -> None:
    """The README's thousand-client table with one figure changed (1,908 completed
    flagship sessions made 1,909): the check fails and names the block."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    readme = tmp_path / "README.md"
    text = readme.read_text()
    start = text.index("<!-- figure: readme-thousand-clients")
    row = text.index("│ flagship-phones │", start)
    line = text[row:text.index("\n", row)]
    cells = line.split("│")
    cells[4] = cells[4].replace(cells[4].strip(), str(int(cells[4].strip().replace(",", "")) + 1))
    readme.write_text(text.replace(line, "│".join(cells), 1))
    done = _check("--only", "readme-thousand-clients", "--docs", str(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the figures of 'readme-thousand-clients' no longer come out as documented" \
        in done.stderr
