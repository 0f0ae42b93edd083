"""What ships with edgetwin to run (package data, `edgetwin.scenarios`): the scenarios,
found by name (`edgetwin simulate thousand_clients`), the example devices file and the
Flower app; `edgetwin scenarios list` shows them, `copy` writes an editable copy."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edgetwin.common.errors import InputError
from edgetwin.profiles.schema import load_yaml


@dataclass(frozen=True)
class Shipped:
    name: str  # as `list` shows it and `copy` takes it
    kind: str  # scenario, devices or app
    path: Path  # the file (a scenario, a devices file) or folder (an app)
    description: str


def root() -> Path:
    """The shipped scenarios' folder (the repository's scenarios/, installed)."""
    return Path(str(resources.files("edgetwin.scenarios")))


def shipped() -> list[Shipped]:
    """Every shipped scenario, devices file and app, scenarios first, each by name."""
    base = root()
    out = []
    for path in sorted(base.glob("*.yaml")):
        data = load_yaml(path)
        about = data.get("description", "") if isinstance(data, dict) else ""
        out.append(Shipped(path.stem, "scenario", path, str(about)))
    for path in sorted((base / "devices").glob("*.yaml")):
        out.append(Shipped(f"devices/{path.stem}", "devices", path, _first_comment(path)))
    for path in sorted(p for p in (base / "apps").iterdir() if (p / "pyproject.toml").is_file()):
        out.append(Shipped(f"apps/{path.name}", "app", path, _first_line(path / "README.md")))
    return out


def find(name: str) -> Shipped:
    """A shipped item by its name (a scenario's with or without `.yaml`)."""
    items = {s.name: s for s in shipped()}
    key = name.removesuffix(".yaml")
    if key not in items:
        raise InputError(name, "", "no such file, and not a shipped scenario (shipped: "
                         f"{', '.join(items)}; `edgetwin scenarios list` describes them)")
    return items[key]


def scenario_path(given: Path) -> Path:
    """`given` where it is a file; else the shipped scenario of that name."""
    if given.exists() or len(given.parts) > 1:
        return given
    item = find(str(given))
    if item.kind != "scenario":
        raise InputError(str(given), "", f"is a shipped {item.kind}, not a scenario")
    return item.path


def copy_out(name: str, dest: Path) -> list[Path]:
    """An editable copy of a shipped item in `dest`, with what a scenario needs beside it
    (the models it names); the files written. Nothing that exists is overwritten."""
    item = find(name)
    dest.mkdir(parents=True, exist_ok=True)
    pairs: list[tuple[Path, Path]] = []
    if item.kind == "app":
        pairs.append((item.path, dest / item.path.name))
    elif item.kind == "devices":
        pairs.append((item.path, dest / "devices" / item.path.name))
    else:
        pairs.append((item.path, dest / item.path.name))
        data = load_yaml(item.path)
        model = str((data.get("workload") or {}).get("model", "")) if isinstance(data, dict) \
            else ""
        if model and (item.path.parent / model).is_dir():
            pairs.append((item.path.parent / model, dest / model))
    for _, target in pairs:
        if target.exists():
            raise InputError(str(target), "", "already exists: copy into another folder")
    for src, target in pairs:
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, target)
    return [target for _, target in pairs]


def _first_comment(path: Path) -> str:
    """The file's opening comment, to its first full stop or colon."""
    words = []
    for line in path.read_text().splitlines():
        if not line.startswith("#") or not line.lstrip("# ").strip():
            break
        words.append(line.lstrip("# ").strip())
    text = " ".join(words)
    ends = [i for i in (text.find(": "), text.find(". ")) if i >= 0]
    return text[: min(ends)] if ends else text


def _first_line(path: Path) -> str:
    if not path.is_file():
        return ""
    for line in path.read_text().splitlines():
        text = line.lstrip("# ").strip()
        if text:
            return text
    return ""
