"""The adb transport and the native runner, against a stand-in `adb` on PATH.

No phone is attached here: `tests/adb_standin.py` keeps each "phone" as a folder
on this host and runs the commands edgetwin gives adb there (push, a streamed
shell, pull, a cable pulled in the middle of a session). The runner is the real
native binary, built with g++."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edgetwin.calibration.bench import Plan
from edgetwin.calibration.opsuite import activation_case, matmul_case, norm_case
from edgetwin.calibration.trace import Measurement
from edgetwin.hil.attached_bench import AgentBench
from edgetwin.hil.inventory import load_inventory
from tests.cli_runs import edgetwin
from tests.hil_helpers import journal_entries, profile_named, tiny_scenario

ROOT = Path(__file__).resolve().parents[1]
SERIAL = "EMU0001"


@pytest.fixture
def runner(native_runner: Path, tmp_path: Path) -> Path:
    """The native binary under the name `devices install` pushes to a phone."""
    out = tmp_path / "edgetwin-runner"
    shutil.copy2(native_runner, out)
    return out


@pytest.fixture
def phone(tmp_path: Path, runner: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A phone folder, `adb` on PATH, and a devices file naming the phone."""
    root = tmp_path / "phones"
    (root / SERIAL).mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                   "from tests.adb_standin import main\nsys.exit(main())\n")
    adb.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("EDGETWIN_ADB_ROOT", str(root))
    profile_named("laptop-x86-8core", "handset", tmp_path / "handset.yaml")
    (tmp_path / "devices.yaml").write_text(yaml.safe_dump({"devices": [
        {"name": "phone", "profile": "handset.yaml",
         "transport": {"kind": "adb", "serial": SERIAL}, "runner": {"kind": "native"}}]}))
    done = edgetwin("devices", "install", str(tmp_path / "devices.yaml"), "--native-binary",
                    str(runner))
    assert done.returncode == 0, done.stderr
    yield tmp_path / "devices.yaml"


def adb_log(devices: Path) -> list[str]:
    return (devices.parent / "phones" / "adb.log").read_text().splitlines()


def test_install_pushes_the_runner_and_check_reaches_it_over_a_streamed_shell(
        phone: Path) -> None:
    pushed = phone.parent / "phones" / SERIAL / "data/local/tmp/edgetwin/edgetwin-runner"
    assert pushed.exists() and os.access(pushed, os.X_OK)
    assert any(line.startswith(f"-s {SERIAL} push ") for line in adb_log(phone))
    done = edgetwin("devices", "check", str(phone), "--json")
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert row["reachable"] == "yes" and row["torch / runner"].startswith("native")
    assert any(f"-s {SERIAL} shell -T" in line for line in adb_log(phone))


def test_a_phone_without_its_runner_built_for_it_is_refused(phone: Path) -> None:
    done = edgetwin("devices", "install", str(phone))
    assert done.returncode == 3 and "--native-binary" in done.stderr
    # the source it tells the user to build is in the repository
    (source,) = re.findall(r"build (\S+\.cpp)", done.stderr)
    assert (ROOT / source).is_file(), source


def test_an_unplugged_phone_is_named_in_one_line(phone: Path) -> None:
    shutil.rmtree(phone.parent / "phones" / SERIAL)
    done = edgetwin("devices", "check", str(phone), "--json")
    assert done.returncode == 1
    assert "adb device EMU0001 is not attached" in json.loads(done.stdout)["reachable"]


def test_calibration_measurements_lost_with_the_link_are_pulled_from_the_phone(
        phone: Path) -> None:
    cases = [matmul_case(32 + i, 64, 48) for i in range(6)] + [
        norm_case("rmsnorm", 16, 64, "forward"), activation_case("silu", 4096, "forward")]
    # the cable is pulled after the hello and three measurements
    (phone.parent / "phones" / SERIAL / ".disconnect").write_text("4")
    device = load_inventory(phone).get("phone")
    bench = AgentBench(device, "phone.trace.jsonl")
    got: list[Measurement] = []
    try:
        bench.measure(cases, Plan(True, 0.0, 3, 0, 0), got.append)
    finally:
        bench.close()
    assert sorted(m.case for m in got) == sorted(c.id for c in cases)
    assert len(got) == len({m.case for m in got})  # none twice
    log = adb_log(phone)
    assert any(line.startswith(f"-s {SERIAL} pull ") for line in log)  # recovered by pull
    assert sum("shell -T" in line for line in log) >= 2  # and reconnected


def test_a_replay_through_the_native_runner_survives_a_pulled_cable(phone: Path) -> None:
    folder = phone.parent
    profile_named("laptop-x86-8core", "one", folder / "one.yaml")
    (folder / "two.yaml").write_text((folder / "handset.yaml").read_text())
    scenario = tiny_scenario(folder, steps=20)
    run = folder / "run"
    done = edgetwin("simulate", str(scenario), "--out", str(run), "--quiet", "--no-plots")
    assert done.returncode == 0, done.stderr
    # the cable is pulled once, in the middle of the first session
    (folder / "phones" / SERIAL / ".disconnect").write_text("6")
    out = folder / "replay"
    done = edgetwin("replay", str(run), "--devices", str(phone), "--sample", "4", "--out",
                    str(out))
    assert done.returncode == 0, done.stderr
    assert "adb device EMU0001 is offline" in done.stderr
    report = json.loads((out / "crosscheck.json").read_text())
    assert report["sessions_replayed"] == 4 and report["sessions_lost"] == 0
    entries = journal_entries(out / "journal.jsonl")
    assert set(Counter(e["session"] for e in entries).values()) == {1}
    assert all(len(e["measured"]["step_time_s"]) == 20 for e in entries)
