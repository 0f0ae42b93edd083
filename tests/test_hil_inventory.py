"""devices.yaml: every problem is one line naming the file and the key, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgetwin.hil.inventory import AdbConfig, LocalConfig, SshConfig, load_inventory
from tests.cli_runs import edgetwin

GOOD = """devices:
  - name: one-core
    profile: laptop-x86-8core
    transport: {kind: local, cpus: [0], threads: 1}
  - name: jetson
    transport: {kind: ssh, host: jetson.local, user: nvidia, options: {ProxyJump: bastion}}
    runner: {kind: torch, torch_device: cuda}
  - name: phone
    profile: calibrated/phone.yaml
    transport: {kind: adb, serial: R5CT1234}
    runner: {kind: native}
"""


def test_a_good_inventory_loads_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "devices.yaml"
    path.write_text(GOOD)
    inv = load_inventory(path)
    one, jetson, phone = inv.devices
    assert isinstance(one.transport, LocalConfig) and one.transport.cpus == (0,)
    assert isinstance(jetson.transport, SshConfig) and jetson.transport.python == "python3"
    assert jetson.transport.options == {"ProxyJump": "bastion"}
    assert jetson.runner.torch_device == "cuda" and jetson.profile is None
    assert isinstance(phone.transport, AdbConfig)
    assert phone.transport.workdir == "/data/local/tmp/edgetwin"
    assert phone.profile_path == (tmp_path / "calibrated" / "phone.yaml").resolve()
    assert phone.load_profile() is None  # not calibrated yet
    assert set(inv.by_profile_name()) == {"laptop-x86-8core"}


CPU_OUT = max(os.sched_getaffinity(0)) + 1
BAD = [
    ("devices: []\n", "devices: expected a non-empty list of devices"),
    ("machines: []\n", "(top level): expected a mapping with one key, devices"),
    ("devices:\n  - name: a\n    transport: local\n    colour: red\n",
     "devices[0].colour: unknown key"),
    ("devices:\n  - name: a b\n    transport: local\n", "devices[0].name: expected a name"),
    ("devices:\n  - name: a\n    transport: local\n  - name: a\n    transport: local\n",
     "devices[1].name: 'a' is used twice"),
    ("devices:\n  - name: a\n    transport: {kind: telnet}\n",
     "devices[0].transport.kind: expected one of local, ssh, adb"),
    ("devices:\n  - name: a\n    transport: {kind: ssh}\n",
     "devices[0].transport.host: missing required key"),
    ("devices:\n  - name: a\n    transport: {kind: ssh, host: h, port: 70000}\n",
     "devices[0].transport.port: must be in 1..65535"),
    ("devices:\n  - name: a\n    transport: {kind: ssh, host: '-oProxyCommand=x'}\n",
     "devices[0].transport.host: expected a host name"),
    ("devices:\n  - name: a\n    transport: {kind: ssh, host: h, identity: /no/such/key}\n",
     "devices[0].transport.identity: key file '/no/such/key' does not exist"),
    ("devices:\n  - name: a\n    transport: {kind: ssh, host: h, workdir: '/tmp; rm -rf ~'}\n",
     "devices[0].transport.workdir: expected a plain directory path"),
    (f"devices:\n  - name: a\n    transport: {{kind: local, cpus: [{CPU_OUT}]}}\n",
     f"devices[0].transport.cpus: CPU {CPU_OUT} is not one this host lets edgetwin use"),
    ("devices:\n  - name: a\n    transport: {kind: local, threads: 0}\n",
     "devices[0].transport.threads: must be > 0"),
    ("devices:\n  - name: a\n    transport: {kind: adb, serial: X}\n",
     "devices[0].runner.kind: an adb device runs the native runner"),
    ("devices:\n  - name: a\n    transport: local\n    runner: {kind: native, "
     "torch_device: cuda}\n", "devices[0].runner.torch_device: the native runner runs on the CPU"),
    ("devices:\n  - name: a\n    transport: local\n    runner: {kind: tensorflow}\n",
     "devices[0].runner.kind: expected one of torch, native"),
    ("devices:\n  - name: a\n    profile: pixel-99\n    transport: local\n",
     "devices[0].profile: unknown device profile"),
    ("devices:\n  - name: a\n    transport: {kind: local, cpus: 0}\n",
     "devices[0].transport.cpus: expected a list"),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_inventories_are_refused_in_one_line(tmp_path: Path, text: str,
                                                 expected: str) -> None:
    path = tmp_path / "devices.yaml"
    path.write_text(text)
    done = edgetwin("devices", "check", str(path))
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith(f"edgetwin: error: {path}: {expected}")
    assert len(done.stderr.strip().splitlines()) == 1


def test_calibrate_names_an_unknown_device(tmp_path: Path) -> None:
    path = tmp_path / "devices.yaml"
    path.write_text(GOOD)
    done = edgetwin("calibrate", "--device", "toaster", "--devices", str(path))
    assert done.returncode == 2
    assert "devices: no device named 'toaster' (known: one-core, jetson, phone)" in done.stderr
    assert not list(tmp_path.glob("*.jsonl"))


def test_an_agent_of_another_layout_is_told_to_reinstall(tmp_path: Path) -> None:
    """A device whose venv holds an edgetwin without `edgetwin.hil.agent` (one installed
    before the package took one name): the interpreter's own error, turned into the step
    that mends it."""
    from edgetwin.hil.transports import transport_for

    path = tmp_path / "devices.yaml"
    path.write_text("devices:\n  - name: box\n    transport: {kind: local}\n")
    (device,) = load_inventory(path).devices
    # an edgetwin of the old layout (its agent a top-level `hil`), no site-packages
    (tmp_path / "edgetwin").mkdir()
    (tmp_path / "edgetwin" / "__init__.py").write_text('"""The old front door."""\n')
    done = subprocess.run([sys.executable, "-S", "-m", "edgetwin.hil.agent"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 1 and "No module named 'edgetwin.hil'" in done.stderr
    err = transport_for(device).failure(done.returncode, done.stderr)
    assert err.permanent
    assert str(err).startswith("box: the agent installed on the device is of another edgetwin")
    assert str(err).endswith("No module named 'edgetwin.hil')): run edgetwin devices install "
                             "again")


@pytest.mark.parametrize(("wheel", "message"), [
    ("missing.whl", "missing.whl: --wheel: no such file"),
    ("notes.txt", "notes.txt: --wheel: not an edgetwin wheel"),
])
def test_a_wheel_that_is_none_is_refused_before_any_device_is_touched(
        tmp_path: Path, wheel: str, message: str) -> None:
    (tmp_path / "notes.txt").write_text("not a wheel\n")
    devices = tmp_path / "devices.yaml"
    devices.write_text("devices:\n  - {name: box, transport: local, profile: p.yaml, "
                       f"workdir: {tmp_path / 'work'}}}\n")
    done = edgetwin("devices", "install", str(devices), "--wheel", str(tmp_path / wheel))
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "work").exists()
