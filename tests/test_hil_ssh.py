"""The ssh transport end to end, against a real OpenSSH sshd on a loopback port with
its own host key and authorized key: install, check, a calibration interrupted and
resumed, replay, refusals and a link that drops in the middle of a replay."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edgetwin.hil.agent.server import kill_tree
from tests.cli_runs import edgetwin
from tests.hil_helpers import (
    agent_processes,
    journal_entries,
    profile_named,
    tiny_scenario,
    wait_for,
)
from tests.processes import start_interruptible

# an sshd, a fresh home with the agent installed, calibrations and replays through it
pytestmark = [pytest.mark.slow, pytest.mark.ssh]

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


class Sshd:
    """sshd in the foreground on 127.0.0.1:port, with a host key and one authorized key."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        for name in ("host_key", "client_key", "other_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            str(folder / name)], check=True)
        (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
        host = (folder / "host_key.pub").read_text().split()[:2]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        (folder / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {' '.join(host)}\n")
        (folder / "sshd_config").write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {folder / 'host_key'}",
            f"AuthorizedKeysFile {folder / 'authorized_keys'}", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "StrictModes no",
            "UsePAM no", "PermitRootLogin prohibit-password",
            f"PidFile {folder / 'sshd.pid'}", ""]))
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.folder / "sshd_config")],
                                     stdout=subprocess.DEVNULL,
                                     stderr=(self.folder / "sshd.log").open("ab"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.1)
        raise AssertionError("sshd did not start: " + (self.folder / "sshd.log").read_text())

    def kill(self) -> None:
        """The daemon and every connection it serves, as when a device drops off."""
        assert self.proc is not None
        kill_tree(self.proc.pid)
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if not Path(SSHD).exists():
        pytest.skip("OpenSSH's sshd is not installed (.ci/run installs openssh-server)")
    if not Path("/run/sshd").is_dir():
        if os.geteuid() != 0:
            pytest.skip("sshd needs its privilege separation directory /run/sshd")
        Path("/run/sshd").mkdir(mode=0o755, parents=True)
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    with contextlib.suppress(AssertionError, OSError, subprocess.TimeoutExpired):
        server.kill()


def devices_file(server: Sshd, folder: Path, *, key: str = "client_key",
                 known_hosts: str = "known_hosts") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "devices.yaml"
    path.write_text(yaml.safe_dump({"devices": [{
        "name": "box", "profile": "box.yaml",
        "transport": {"kind": "ssh", "host": "127.0.0.1", "port": server.port,
                      "identity": str(server.folder / key),
                      "known_hosts": str(server.folder / known_hosts),
                      "python": sys.executable, "workdir": str(folder / "home" / ".edgetwin")},
        "runner": {"kind": "torch"}}]}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def installed(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A device whose home is a fresh folder, its agent installed over ssh."""
    devices = devices_file(sshd, tmp_path_factory.mktemp("box"))
    done = edgetwin("devices", "install", str(devices))
    assert done.returncode == 0, done.stderr
    assert "agent installed in" in done.stderr
    venv = devices.parent / "home" / ".edgetwin" / "venv"
    assert (venv / "bin" / "python").exists()
    return devices


def test_devices_check_reaches_the_installed_agent(installed: Path) -> None:
    done = edgetwin("devices", "check", str(installed), "--json")
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert row["reachable"] == "yes" and row["torch / runner"].startswith("torch 2.")
    # the agent runs from the wheel installed in the device's venv, not from this tree
    assert row["facts"]["workdir"].endswith("home/.edgetwin")


def _calibrate_until(installed: Path, lines: int, *extra: str) -> tuple[int, list[str]]:
    """`edgetwin calibrate` of the box through ssh, interrupted with Ctrl-C once its
    trace holds `lines` lines; its exit status and the trace as it was left. With
    `--allow-busy`: what is checked here is the journal, and the guard against a busy
    device (its own test: tests/test_hil_verdict.py) would otherwise refuse to start
    where this shared machine's probe happens to spread."""
    trace = installed.with_name("box.trace.jsonl")
    proc = start_interruptible([sys.executable, "-m", "edgetwin.cli", "calibrate", "--device",
                                "box", "--devices", str(installed), "--quick", "--allow-busy",
                                *extra])

    def written() -> int:
        return len(trace.read_text().splitlines()) if trace.exists() else 0

    wait_for(lambda: written() >= lines or proc.poll() is not None, 300, f"{lines} lines")
    assert proc.poll() is None, proc.communicate()[1]  # still calibrating when interrupted
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    return proc.returncode, trace.read_text().splitlines()


def test_a_calibration_through_ssh_is_journaled_on_both_ends_and_resumes(
        installed: Path) -> None:
    """The op suite's measurements stream back over ssh into the host's trace and the
    device's own copy; Ctrl-C stops the agent on the device, and `--resume` carries on
    from the last line journaled. (That a finished calibration writes a profile does not
    depend on the transport: tests/test_hil_verdict.py calibrates one through the local
    one, interrupted and resumed likewise.)"""
    workdir = installed.parent / "home" / ".edgetwin"
    status, first = _calibrate_until(installed, 30)
    assert status == 130 and len(first) >= 30
    wait_for(lambda: not agent_processes(workdir), 30, "the box's agent to stop")
    measured = [line for line in first if '"record"' not in line]
    rows = [json.loads(line) for line in measured]
    assert rows and all(r["latency_s"]["median"] > 0 and r["device"]["torch"].startswith("2.")
                        for r in rows)  # timed on the box, with the box's own facts
    device_copy = (workdir / "calibration" / "box.trace.jsonl").read_text().splitlines()
    assert set(measured) <= set(device_copy)  # every measurement on both ends
    status, second = _calibrate_until(installed, len(first) + 20, "--resume")
    assert status == 130 and second[: len(first)] == first  # kept, as it was
    cases = [json.loads(line)["case"] for line in second if '"record"' not in line]
    assert len(cases) == len(set(cases)) > len(measured)  # carried on, nothing measured twice
    assert not installed.with_name("box.yaml").exists()  # no profile from half a calibration


@pytest.fixture(scope="module")
def box_profile(installed: Path) -> Path:
    """The profile the box stands for in the replays (a shipped one, under its name)."""
    return profile_named("laptop-x86-8core", "box", installed.with_name("box-replays.yaml"))


def _replay_devices(installed: Path) -> Path:
    """The devices file with the box standing for the replays' profile."""
    data = yaml.safe_load(installed.read_text())
    data["devices"][0]["profile"] = "box-replays.yaml"
    path = installed.with_name("replay-devices.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _run(folder: Path, profile: Path, steps: int) -> Path:
    profile_named("laptop-x86-8core", "one", folder / "one.yaml")
    (folder / "two.yaml").write_text(profile.read_text())  # the class the box stands for
    scenario = tiny_scenario(folder, steps=steps)
    run = folder / "run"
    done = edgetwin("simulate", str(scenario), "--out", str(run), "--quiet", "--no-plots")
    assert done.returncode == 0, done.stderr
    return run


def test_replay_through_ssh(installed: Path, box_profile: Path, tmp_path: Path) -> None:
    run = _run(tmp_path, box_profile, steps=3)
    out = tmp_path / "replay"
    done = edgetwin("replay", str(run), "--devices", str(_replay_devices(installed)),
                    "--sample", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "crosscheck.json").read_text())
    assert report["sessions_replayed"] == 3 and report["sessions_lost"] == 0
    assert set(report["per_device"]) == {"box"}
    assert report["upload_bytes_mismatches"] == []


def test_a_link_dropped_mid_replay_is_lost_then_the_rerun_finishes(
        sshd: Sshd, installed: Path, box_profile: Path, tmp_path: Path) -> None:
    run = _run(tmp_path, box_profile, steps=80)
    out = tmp_path / "replay"
    devices = _replay_devices(installed)
    cmd = [sys.executable, "-m", "edgetwin.cli", "replay", str(run), "--devices", str(devices),
           "--sample", "4", "--out", str(out), "--retries", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workdir = installed.parent / "home" / ".edgetwin"
    wait_for(lambda: len(agent_processes(workdir)) >= 2, 180, "a session on the box")
    sshd.kill()
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        sshd.start()
    assert proc.returncode == 1, err  # sessions lost, and no --allow-lost
    assert "cannot reach 127.0.0.1" in err or "the link failed" in err
    wait_for(lambda: not agent_processes(workdir), 30, "the box's agent to stop")
    first = journal_entries(out / "journal.jsonl")
    assert [e for e in first if e["status"] == "lost"]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    entries = journal_entries(out / "journal.jsonl")
    replayed = Counter(e["session"] for e in entries if e["status"] == "replayed")
    assert len(replayed) == 4 and set(replayed.values()) == {1}
    assert json.loads((out / "crosscheck.json").read_text())["sessions_lost"] == 0


@pytest.mark.parametrize(("key", "known", "expected"), [
    ("other_key", "known_hosts", "refused the key"),
    ("client_key", "empty_known_hosts", "is not known"),
    ("client_key", "changed_known_hosts", "has CHANGED"),
])
def test_a_wrong_key_or_host_key_is_refused_in_one_line(sshd: Sshd, tmp_path: Path, key: str,
                                                        known: str, expected: str) -> None:
    (sshd.folder / "empty_known_hosts").write_text("")
    other = (sshd.folder / "other_key.pub").read_text().split()[:2]
    (sshd.folder / "changed_known_hosts").write_text(
        f"[127.0.0.1]:{sshd.port} {' '.join(other)}\n")
    devices = devices_file(sshd, tmp_path, key=key, known_hosts=known)
    done = edgetwin("calibrate", "--device", "box", "--devices", str(devices), "--quick")
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and lines[0].startswith("edgetwin: error: box")
    check = edgetwin("devices", "check", str(devices), "--json")
    assert check.returncode == 1 and expected in json.loads(check.stdout)["reachable"]
    assert not (tmp_path / "box.trace.jsonl").exists()
    # never accepted silently: the known-hosts file is as it was
    assert (sshd.folder / "empty_known_hosts").read_text() == ""
