"""The ssh transport end to end, against a real OpenSSH sshd on a loopback port with
its own host key and authorized key: install, check, calibrate, replay, refusals and
a link that drops in the middle of a replay."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hil.agent import kill_tree
from tests.hil_helpers import (
    agent_processes,
    edgetwin,
    journal_entries,
    profile_named,
    tiny_scenario,
    wait_for,
)

# an sshd, a fresh home and a quick calibration through it: minutes, together
pytestmark = pytest.mark.slow

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
    done = edgetwin("devices", "install", str(devices), timeout=900)
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


@pytest.fixture(scope="module")
def calibrated(installed: Path) -> Path:
    done = edgetwin("calibrate", "--device", "box", "--devices", str(installed), "--quick",
                    timeout=1200)
    assert done.returncode == 0, done.stderr
    return installed.parent / "box.yaml"


def test_quick_calibration_through_ssh_writes_the_devices_profile(calibrated: Path) -> None:
    profile = yaml.safe_load(calibrated.read_text())
    assert profile["name"] == "box"
    source = profile["provenance"]["compute.matmul"]["source"]
    assert "attached device box (ssh, torch runner)" in source
    trace = calibrated.with_name("box.trace.jsonl").read_text().splitlines()
    assert sum('"record"' not in line for line in trace) > 100
    workdir = calibrated.parent / "home" / ".edgetwin" / "calibration" / "box.trace.jsonl"
    assert workdir.exists()  # the device's own copy


def _run(folder: Path, profile: Path, steps: int) -> Path:
    profile_named("laptop-x86-8core", "one", folder / "one.yaml")
    (folder / "two.yaml").write_text(profile.read_text())  # the class the box stands for
    scenario = tiny_scenario(folder, steps=steps)
    run = folder / "run"
    done = edgetwin("simulate", str(scenario), "--out", str(run), "--quiet", "--no-plots")
    assert done.returncode == 0, done.stderr
    return run


def test_replay_through_ssh(calibrated: Path, tmp_path: Path) -> None:
    run = _run(tmp_path, calibrated, steps=3)
    out = tmp_path / "replay"
    done = edgetwin("replay", str(run), "--devices", str(calibrated.parent / "devices.yaml"),
                    "--sample", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "crosscheck.json").read_text())
    assert report["sessions_replayed"] == 3 and report["sessions_lost"] == 0
    assert set(report["per_device"]) == {"box"}
    assert report["upload_bytes_mismatches"] == []


def test_a_link_dropped_mid_replay_is_lost_then_the_rerun_finishes(
        sshd: Sshd, calibrated: Path, tmp_path: Path) -> None:
    run = _run(tmp_path, calibrated, steps=80)
    out = tmp_path / "replay"
    devices = calibrated.parent / "devices.yaml"
    cmd = [sys.executable, "-m", "hil.cli", "replay", str(run), "--devices", str(devices),
           "--sample", "4", "--out", str(out), "--retries", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workdir = calibrated.parent / "home" / ".edgetwin"
    wait_for(lambda: len(agent_processes(workdir)) >= 2, 180, "a session on the box")
    sshd.kill()
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        sshd.start()
    assert proc.returncode == 0, err
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
