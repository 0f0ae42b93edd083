"""The house rules of the code: one import name, layers that depend one way and no
import cycle (imports inside functions count: a deferred import only hides a cycle),
configuration that loads no implementation, a light `import edgetwin`, modules that read
in one sitting, and the package list in pyproject.toml in step with the folders."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import typing
from pathlib import Path

import tomllib

from edgetwin.emulator.selection.params import POLICY_NAMES
from edgetwin.emulator.selection.registry import POLICIES

ROOT = Path(__file__).resolve().parents[1]
# each folder and the package it is installed as
FOLDERS = {"edgetwin": "edgetwin", "profiles": "edgetwin.profiles",
           "calibration": "edgetwin.calibration", "emulator": "edgetwin.emulator",
           "hil": "edgetwin.hil", "scenarios": "edgetwin.scenarios"}
# what each layer may import besides itself
ALLOWED = {"edgetwin.common": set(),
           "edgetwin.profiles": {"edgetwin.common"},
           "edgetwin.calibration": {"edgetwin.common", "edgetwin.profiles"},
           "edgetwin.emulator": {"edgetwin.common", "edgetwin.profiles"},
           "edgetwin.hil": {"edgetwin.common", "edgetwin.profiles", "edgetwin.calibration",
                            "edgetwin.emulator"}}


def modules() -> dict[str, Path]:
    """Every module of the package, by its import name (the shipped Flower app aside)."""
    out = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            if "apps" in rel.parts:
                continue
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The package's modules `path` imports, outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "edgetwin"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            if base.split(".")[0] != "edgetwin":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else base)
    return {m for m in out if m in known}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(path, name, known) - {name} for name, path in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of a graph: its strongly connected parts of more than one module
    (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(g.get(v, set())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    sys.setrecursionlimit(10_000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle() -> None:
    # the check finds a cycle where there is one, however deep
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    g = graph()
    assert len(g) > 100 and cycles(g) == []
    # and nothing the engine imports, at any depth, imports the engine back
    seen, todo = set(), ["edgetwin.emulator.engine"]
    while todo:
        for w in g[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    assert "edgetwin.emulator.engine" not in seen
    assert [m for m in seen if "edgetwin.emulator.engine" in g[m]] == []


def test_layers_depend_one_way() -> None:
    wrong = []
    for name, deps in graph().items():
        layer = next((k for k in ALLOWED if name == k or name.startswith(k + ".")), None)
        if layer is None:
            continue  # the front door (and the scenarios' package) may use every layer
        for d in deps:
            if not any(d == a or d.startswith(a + ".") for a in {layer} | ALLOWED[layer]):
                wrong.append(f"{name} imports {d}")
    assert wrong == []


def loaded_by(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", f"import json, sys; {code}; "
                           "print(json.dumps(sorted(sys.modules)))"], check=True,
                          cwd=ROOT, capture_output=True, text=True)
    result: list[str] = json.loads(done.stdout)
    return result


def test_import_edgetwin_loads_no_layer_or_heavy_library() -> None:
    loaded = loaded_by("import edgetwin")
    assert [m for m in loaded if m.startswith("edgetwin.")] == []
    assert [m for m in ("torch", "scipy", "matplotlib", "simpy", "numpy") if m in loaded] == []


def test_loading_a_scenario_loads_no_engine_policy_or_session_code() -> None:
    loaded = loaded_by("import edgetwin.emulator.scenario, edgetwin.emulator.config")
    assert "edgetwin.emulator.config" in loaded
    implementations = [f"edgetwin.emulator.{m}" for m in (
        "engine", "sync_rounds", "async_rounds", "session", "steps", "fleet", "costs",
        "checkin", "selection.policies", "selection.registry", "selection.view")]
    assert [m for m in [*implementations, "simpy"] if m in loaded] == []


def test_no_module_is_over_400_lines() -> None:
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines())
             for p in modules().values()}
    assert len(sizes) > 100
    assert {p: n for p, n in sizes.items() if n > 400} == {}


def test_every_package_folder_is_installed() -> None:
    """The packages pyproject.toml lists are the folders with an `__init__.py`, and folders
    of data each shipped by a pattern of their own."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, data = set(setuptools["packages"]), setuptools["package-data"]
    folders = {name for name, path in modules().items() if path.name == "__init__.py"}
    assert folders <= listed
    for name in listed - folders:  # data: a folder that exists, its files named by a pattern
        folder = folder_of(name)  # (the Flower app's code is data: users copy it, not import it)
        assert folder.is_dir(), name
        assert "apps" in folder.parts or not (folder / "__init__.py").exists(), name
        assert name in data and any(any(folder.glob(g)) for g in data[name]), name


def folder_of(package: str) -> Path:
    """The repository folder a package name is installed from (pyproject's package-dir)."""
    for folder, name in sorted(FOLDERS.items(), key=lambda kv: -len(kv[1])):
        if package == name or package.startswith(name + "."):
            return ROOT / folder / package[len(name) + 1:].replace(".", "/")
    raise AssertionError(f"{package}: no folder is installed under this name")


def test_every_configured_policy_and_mode_has_an_implementation() -> None:
    from edgetwin.emulator.config import OrchestrationConfig
    from edgetwin.emulator.orchestrators import ORCHESTRATORS

    assert sorted(POLICIES) == sorted(POLICY_NAMES)
    modes = typing.get_args(typing.get_type_hints(OrchestrationConfig)["mode"])
    assert sorted(ORCHESTRATORS) == sorted(modes)
