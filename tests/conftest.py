"""Shared fixtures: where the project's reference measurements live, the native binary."""

from __future__ import annotations

import importlib.abc
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
# CI draws the same examples on every run (`--hypothesis-profile=ci`, set by .ci/run):
# a failure there is the change's, not the draw's; elsewhere each run draws new ones
settings.register_profile("ci", derandomize=True)
# the published figures the shipped reference profiles are built from and checked against
REFERENCE = ROOT / "profiles" / "reference" / "published_measurements.yaml"


OLD_TOP_LEVEL = ("emulator", "profiles", "calibration", "hil", "scenarios")


class _InstalledNamesOnly(importlib.abc.MetaPathFinder):
    """The repository's root is on sys.path while tests run, so `import emulator` would
    find the folder that the installed package knows only as `edgetwin.emulator`: refuse
    it, as an installed edgetwin would (a string passed to importlib escapes the lint)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.split(".")[0] in OLD_TOP_LEVEL:
            raise ModuleNotFoundError(f"No module named {name!r} (installed as "
                                      f"'edgetwin.{name}')", name=name)


sys.meta_path.insert(0, _InstalledNamesOnly())


@pytest.fixture(autouse=True)
def _quiet_library_warnings() -> None:
    # PEFT and transformers warn about Conv1D fan-in and deprecated names; not ours to fix.
    warnings.filterwarnings("ignore", category=UserWarning, module="peft")
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")



NATIVE_SOURCE = ROOT / "calibration" / "native" / "opbench.cpp"


@pytest.fixture(scope="session")
def native_runner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`opbench`, the op benchmark and agent of devices without Python, built once per run.

    One rule for a missing compiler: every test that needs the binary skips with this reason
    (CI installs g++, so there it runs)."""
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no g++ on PATH: the native runner (calibration/native/opbench.cpp) "
                    "cannot be built; install g++ to run this test")
    binary = tmp_path_factory.mktemp("native") / "opbench"
    subprocess.run([compiler, "-O2", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-o",
                    str(binary), str(NATIVE_SOURCE)], check=True, timeout=600)
    return binary
