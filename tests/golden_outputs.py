"""Golden outputs: every shipped scenario, synchronous and buffered-asynchronous, run
with its own seed; the hashes of what it wrote are kept in `tests/golden/outputs.json`.

`python -m tests.golden_outputs` records them again. Do that only for a deliberate
change of what the emulator computes, and say which in the commit.

The hashes are kept per class of processor (`cpu_class`): numpy's float64 `exp` on a
processor with AVX-512 is numpy's own, elsewhere the C library's, and the two can differ
in the last bit. A session at a knife edge (its report exactly at the moment that decides
its outcome) then gets another `timing_margin` in client_sessions.csv (the
thousand-client asynchronous case: one row of 1,383). Recording on one class keeps the
other class's hashes of a case only while this class's are unchanged; otherwise they
are set to this class's, to be checked on such a machine.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgetwin.emulator.output.simulate import simulate
from edgetwin.emulator.scenario import load_scenario
from tests.hil_helpers import with_standin_profiles

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "outputs.json"
SCENARIOS = ("quickstart", "thousand_clients", "edgeflowertune_8client", "hil_local")
MODES = ("sync", "async")
CASES = [f"{name}-{mode}" for name in SCENARIOS for mode in MODES]
FILES = ("rounds.csv", "client_sessions.csv")
# inputs, not outputs: the package version and the profiles' own hashes
INPUT_KEYS = ("edgetwin_version", "profiles_sha256")


def run_case(case: str, folder: Path) -> dict[str, Any]:
    """Simulate one case into `folder`: its summary (less the inputs) and file hashes."""
    name, mode = case.rsplit("-", 1)
    path = with_standin_profiles(ROOT / "scenarios" / f"{name}.yaml", folder)
    scenario = load_scenario(path, [f"orchestration.mode={mode}"])
    out = folder / "run"
    simulate(scenario, out, plots=False)
    summary = json.loads((out / "summary.json").read_text())
    for key in INPUT_KEYS:
        summary.pop(key, None)
    hashes = {f: hashlib.sha256((out / f).read_bytes()).hexdigest() for f in FILES}
    return {"summary": summary, "sha256": hashes}


def cpu_class() -> str:
    """Whose float64 `exp` numpy runs here: its own AVX-512 one (`avx512f`), or the C
    library's (`libm`)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy 1
        from numpy.core._multiarray_umath import __cpu_features__
    return "avx512f" if __cpu_features__.get("AVX512F") else "libm"


def recorded_hashes(entry: dict[str, Any]) -> dict[str, dict[str, str]]:
    """A case's file hashes per processor class."""
    hashes: dict[str, dict[str, str]] = entry["sha256"]
    return hashes


def main() -> int:
    here = cpu_class()
    old = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    golden: dict[str, Any] = {}
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            got = run_case(case, Path(tmp))
        before = recorded_hashes(old[case]) if case in old else {}
        if before.get(here) == got["sha256"] and old[case]["summary"] == got["summary"]:
            hashes = {**before, here: got["sha256"]}  # unchanged: the others stand
        else:
            hashes = {cls: got["sha256"] for cls in {*before, here}}
            others = sorted(set(before) - {here})
            if others:
                print(f"{case}: changed; set for {', '.join(others)} too: check there")
        golden[case] = {"summary": got["summary"], "sha256": hashes}
        print(case, got["summary"]["client_sessions"], "sessions")
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
