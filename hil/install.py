"""`edgetwin devices install`: put the agent on a device.

torch runner: this project's wheel is copied over the transport and installed into a
virtual environment in the device's work directory. The environment also sees the
packages of the device's own interpreter (a `.pth` file naming its site-packages),
so a torch that came with the device (JetPack's on a Jetson) is used as it is;
torch itself is never installed by edgetwin. native runner: the C++ runner is
built on the device with its g++ (ssh, local) or a binary built with the Android
NDK is pushed (adb).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from edgetwin.hil.inventory import AdbConfig, Device, LocalConfig, SshConfig
from edgetwin.hil.transports import LinkError, Transport, transport_for
from edgetwin.hil.transports.base import RUNNER_BINARY, shell_path

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / "calibration" / "native"  # opbench.cpp and the headers it includes
# what the agent imports, by the distribution that provides it
AGENT_NEEDS = {"numpy": "numpy", "scipy": "scipy", "yaml": "pyyaml", "transformers":
               "transformers", "peft": "peft"}


def install(device: Device, *, wheel: Path | None = None, native_binary: Path | None = None,
            log: Callable[[str], None] = print) -> None:
    t = transport_for(device)
    if device.runner.kind == "native":
        _install_native(device, t, native_binary, log)
    elif isinstance(device.transport, LocalConfig):
        log(f"{device.name}: a local torch device runs this installation's agent; "
            "nothing to install")
    elif wheel is not None:
        _install_torch(device, t, wheel, log)
    else:
        built = build_wheel(log)
        try:
            _install_torch(device, t, built, log)
        finally:
            shutil.rmtree(built.parent, ignore_errors=True)  # the wheel's own temporary folder


def build_wheel(log: Callable[[str], None]) -> Path:
    """This project's wheel, built from its source tree."""
    if not (ROOT / "pyproject.toml").exists():
        raise LinkError("no source tree to build the agent's wheel from: pass --wheel "
                        "edgetwin-*.whl", permanent=True)
    out = Path(tempfile.mkdtemp(prefix="edgetwin-wheel-"))
    log("building the edgetwin wheel")
    leftover = not (ROOT / "build").exists()  # setuptools builds in the tree: tidy after it
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(out), str(ROOT)], capture_output=True, text=True, timeout=900)
    if leftover:
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    wheels = sorted(out.glob("edgetwin-*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise LinkError(f"building the edgetwin wheel failed ({last})", permanent=True)
    return wheels[-1]


def _install_torch(device: Device, t: Transport, wheel: Path, log: Callable[[str], None]
                   ) -> None:
    assert isinstance(device.transport, SshConfig)
    wd, py = t.workdir, device.transport.python
    remote_wheel = f"{wd}/{wheel.name}"
    log(f"{device.name}: copying {wheel.name} to {wd}")
    t.push(wheel, remote_wheel)
    log(f"{device.name}: making the virtual environment {wd}/venv with {py}")
    script = "\n".join([
        "set -e",
        f"cd {shell_path(wd)}",
        f"PY={shell_path(py)}",
        '"$PY" -c "import sys; assert sys.version_info >= (3, 10), sys.version" || '
        '{ echo "edgetwin needs Python 3.10 or newer on the device" >&2; exit 3; }',
        '[ -x venv/bin/python ] || "$PY" -m venv venv || { echo "$PY -m venv failed: '
        'install the venv module (python3-venv)" >&2; exit 3; }',
        "SITE=$(venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')",
        # the device interpreter's own packages (its torch) stay visible in the venv
        '"$PY" -c "import site, sys; print(chr(10).join([p for p in sys.path if '
        "p.endswith(('site-packages', 'dist-packages'))]))\" > \"$SITE/edgetwin-device.pth\"",
        f"venv/bin/python -m pip install -q --no-deps --force-reinstall {shell_path(wheel.name)}",
        # what the agent needs that the device does not have, found without importing it
        "venv/bin/python -c \"import importlib.util as u; print(' '.join(m for m in "
        "('torch', 'numpy', 'scipy', 'yaml', 'transformers', 'peft') "
        "if u.find_spec(m) is None))\"",
    ])
    missing = t.run(["sh", "-c", script], timeout_s=1800.0).split()
    if "torch" in missing:
        raise LinkError(f"{device.name}: torch is not importable with {py} on the device: "
                        "install the device's own torch build first (JetPack's on a Jetson), "
                        "or use runner: {kind: native}", permanent=True)
    if missing:
        names = sorted({AGENT_NEEDS[m] for m in missing if m in AGENT_NEEDS})
        log(f"{device.name}: installing {', '.join(names)} into the venv")
        t.run([f"{wd}/venv/bin/python", "-m", "pip", "install", "-q", *names],
              timeout_s=1800.0)
    log(f"{device.name}: agent installed in {wd}/venv")


def _install_native(device: Device, t: Transport, binary: Path | None,
                    log: Callable[[str], None]) -> None:
    target = f"{t.workdir}/{RUNNER_BINARY}"
    if isinstance(device.transport, AdbConfig):
        if binary is None:
            raise LinkError(f"{device.name}: an adb device needs the runner built for it: "
                            "build calibration/native/opbench.cpp with the Android NDK (see "
                            "docs/devices.md) and pass --native-binary", permanent=True)
        log(f"{device.name}: pushing {binary} to {target}")
        t.push(binary, target)
        t.run(["chmod", "755", target])
        return
    if binary is not None:
        t.push(binary, target)
        t.run(["chmod", "755", target])
    else:
        log(f"{device.name}: building the native runner on the device with g++")
        for f in sorted(NATIVE.iterdir()):
            if f.suffix in (".cpp", ".hpp", ".h"):
                t.push(f, f"{t.workdir}/native/{f.name}")
        t.run(["g++", "-O2", "-std=c++17", "-o", target, f"{t.workdir}/native/opbench.cpp"],
              timeout_s=900.0)
    log(f"{device.name}: native runner installed at {target}")
