"""Golden outputs: every shipped scenario, synchronous and buffered-asynchronous, run
with its own seed; the hashes of what it wrote are kept in `tests/golden/outputs.json`.

`python -m tests.golden_outputs` records them again. Do that only for a deliberate
change of what the emulator computes, and say which in the commit.
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


def main() -> int:
    golden: dict[str, Any] = {}
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            golden[case] = run_case(case, Path(tmp))
        print(case, golden[case]["summary"]["client_sessions"], "sessions")
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
