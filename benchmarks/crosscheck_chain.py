"""The attached-device cross-check, right both ways: `scenarios/hil_local.yaml` over the
profiles its devices were calibrated to, simulated and replayed; then the same with the
one-core profile made 1.3 times too fast (every op cost and the session's set-up).

Usage: python benchmarks/crosscheck_chain.py [--sample 40] [--profiles DIR] [--out DIR]

Run after the devices are calibrated (`make hil-demo` does it). `--profiles` takes the
profiles from another folder (the ones a replay's `--recalibrate` wrote, say) in place of
`scenarios/calibrated/`, class by class where it holds one. Prints, per chain, the
verdict and the scores the README quotes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "hil_local.yaml"
DEVICES = ROOT / "scenarios" / "devices" / "hil_local.yaml"


def chain(folder: Path, name: str, sample: int) -> dict[str, object]:
    """Simulate `folder`/hil_local.yaml and replay it on the devices of `folder`."""
    from edgetwin.cli import main

    run = folder / name
    if main(["simulate", str(folder / "hil_local.yaml"), "--out", str(run), "--quiet",
             "--no-plots"]) != 0:
        raise SystemExit(f"{name}: the simulation failed")
    if main(["replay", str(run), "--devices", str(folder / "devices" / "hil_local.yaml"),
             "--sample", str(sample), "--no-plots"]) != 0:
        raise SystemExit(f"{name}: the replay failed")
    report: dict[str, object] = json.loads((run / "replay" / "crosscheck.json").read_text())
    return report


def too_fast(path: Path, factor: float = 1.3) -> None:
    """The profile at `path`, rewritten `factor` times too fast."""
    from edgetwin.calibration.profile_builder import write_profile
    from edgetwin.hil.replay.recalibrate import corrected
    from edgetwin.profiles.device import Provenance, load_profile

    p = load_profile(str(path))
    fast = corrected(p, 1 / factor, 0.0, Provenance(
        "assumed", "benchmarks/crosscheck_chain.py", "2026-12-06",
        f"the calibrated profile made {factor:g} times too fast"))
    write_profile(fast, path, f"{factor:g} times too fast, for a cross-check that must fail.")


def line(name: str, r: dict[str, object]) -> str:
    def pct(v: object) -> str:
        return "-" if v is None else f"{float(v) * 100:.1f} %"  # type: ignore[arg-type]

    st, se = r["step_time"] or {}, r["session_time"] or {}
    bias = r["bias"] or {}
    assert isinstance(st, dict) and isinstance(se, dict) and isinstance(bias, dict)
    return (f"{name:22s} {r['verdict']:13s} coverage {pct(r['interval_coverage_90'])}, "
            f"Brier {r['brier']}, sensitive agree {pct(r['decision_agreement_sensitive'])} "
            f"({r['sensitive_sessions']}), step {pct(st.get('median_abs_error'))} "
            f"(bias {pct(bias.get('mean'))}), session {pct(se.get('median_abs_error'))}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample", type=int, default=40)
    ap.add_argument("--profiles", type=Path, default=ROOT / "scenarios" / "calibrated")
    ap.add_argument("--out", type=Path, default=None, help="keep the runs here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        results = []
        for name, fast in (("as calibrated", False), ("one-core 1.3x too fast", True)):
            here = folder / ("fast" if fast else "calibrated")
            shutil.rmtree(here, ignore_errors=True)
            for sub in ("models", "devices"):
                shutil.copytree(ROOT / "scenarios" / sub, here / sub)
            shutil.copy(SCENARIO, here / "hil_local.yaml")
            (here / "calibrated").mkdir()
            for cls in ("one-core", "two-core"):
                src = args.profiles / f"{cls}.yaml"
                if not src.exists():
                    src = ROOT / "scenarios" / "calibrated" / f"{cls}.yaml"
                shutil.copy(src, here / "calibrated" / f"{cls}.yaml")
            if fast:
                too_fast(here / "calibrated" / "one-core.yaml")
            results.append((name, chain(here, "run", args.sample)))
        print(f"{'chain':22s} verdict")
        for name, r in results:
            print(line(name, r))
            for reason in r["verdict_reasons"]:  # type: ignore[attr-defined]
                print(f"{'':22s} - {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
