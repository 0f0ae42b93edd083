"""A page's examples, run: each `python` block of a Markdown page in order, in one
namespace, from a folder that looks like the repository's root; a `text` block right
after one is what it prints. The API test checks the page against them;
`python -m tests.doc_examples docs/api.md --write` writes what they print now into it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(doc: Path) -> list[tuple[str, int, str, int, int]]:
    """The page's fenced blocks: info string, line of the first code line, text, and the
    text's start and end offsets in the page."""
    text = doc.read_text()
    return [(m.group(1).strip(), text.count("\n", 0, m.start(2)) + 1, m.group(2), m.start(2),
             m.end(2)) for m in FENCE.finditer(text)]


def run(doc: Path, workdir: Path) -> list[tuple[int, str]]:
    """Run the page's python blocks in `workdir` (with `scenarios/` linked into it): per
    block followed by a text block, that block's index and what the code printed."""
    if not (workdir / "scenarios").exists():
        (workdir / "scenarios").symlink_to(ROOT / "scenarios")
    found = blocks(doc)
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    printed = []
    here = Path.cwd()
    os.chdir(workdir)
    try:
        for i, (info, line, code, _, _) in enumerate(found):
            if info != "python":
                continue
            out = io.StringIO()
            with contextlib.redirect_stdout(out):  # traceback line numbers are the page's
                exec(compile("\n" * (line - 1) + code, str(doc), "exec"), namespace)
            if i + 1 < len(found) and found[i + 1][0] == "text":
                printed.append((i + 1, out.getvalue()))
    finally:
        os.chdir(here)
    return printed


def write(doc: Path) -> int:
    """Rewrite the page's output blocks with what its examples print now; how many
    changed."""
    with tempfile.TemporaryDirectory() as tmp:
        printed = run(doc, Path(tmp))
    text = doc.read_text()
    found = blocks(doc)
    changed = 0
    for i, out in reversed(printed):
        _, _, old, start, end = found[i]
        if old != out:
            text = text[:start] + out + text[end:]
            changed += 1
    doc.write_text(text)
    return changed


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Run a page's examples; --write puts their "
                                 "output into it")
    ap.add_argument("doc", type=Path)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    if args.write:
        print(f"{args.doc}: {write(args.doc)} output blocks rewritten")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            for i, out in run(args.doc, Path(tmp)):
                print(f"--- block {i}\n{out}", end="")
    sys.exit(0)
