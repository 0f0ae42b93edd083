"""A Flower App project folder, read as Flower reads it: `pyproject.toml`'s
`[tool.flwr.app.components]` (the ServerApp and ClientApp objects) and
`[tool.flwr.app.config]` (the run config), with `--run-config` overrides in Flower's
own syntax (`"num-server-rounds=5 method='fedprox'"`)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgetwin.common.errors import InputError


@dataclass(frozen=True)
class FlowerApp:
    """Where an app is and what it runs with; the app's objects are loaded on demand,
    in whichever process needs them."""

    folder: Path
    serverapp: str  # "package.module:attribute"
    clientapp: str
    run_config: dict[str, Any]


def load_app(folder: Path, run_config: str | None = None) -> FlowerApp:
    """The app in `folder` with its config fused with `run_config`; bad input is an
    `InputError` naming the file and the key."""
    from flwr.common.config import (
        get_fused_config_from_dir,
        get_project_config,
        parse_config_args,
    )

    toml = folder / "pyproject.toml"
    where = str(toml)
    if not toml.is_file():
        raise InputError(str(folder), "--app", "not a Flower App project (no pyproject.toml)")
    try:
        project = get_project_config(folder)
    except (ValueError, OSError) as err:
        raise InputError(where, "", str(err).splitlines()[0]) from None
    components = project.get("tool", {}).get("flwr", {}).get("app", {}).get("components", {})
    for key in ("serverapp", "clientapp"):
        if not isinstance(components.get(key), str) or ":" not in components[key]:
            raise InputError(where, f"tool.flwr.app.components.{key}",
                             "missing, or not 'module:attribute'")
    for item in shlex.split(run_config or ""):
        key, eq, value = item.partition("=")
        if not (key and eq and value):  # Flower's parser would skip it without a word
            raise InputError("--run-config", item, "expected key=value")
    try:
        overrides = parse_config_args([run_config] if run_config else None)
    except ValueError as err:
        raise InputError("--run-config", run_config or "", str(err)) from None
    defaults = project["tool"]["flwr"]["app"].get("config", {})
    unknown = sorted(set(overrides) - set(_flat_keys(defaults)))
    if unknown:
        raise InputError("--run-config", unknown[0], "not a key of the app's "
                         "[tool.flwr.app.config]")
    fused = dict(get_fused_config_from_dir(folder, overrides))
    return FlowerApp(folder.resolve(), components["serverapp"], components["clientapp"], fused)


def load_component(app: FlowerApp, which: str) -> Any:
    """The app's ServerApp or ClientApp object (`which`: serverapp or clientapp)."""
    from flwr.supercore.object_ref import load_app as load_object

    ref = app.serverapp if which == "serverapp" else app.clientapp
    try:
        return load_object(ref, ImportError, app.folder)
    except ImportError as err:
        raise InputError(str(app.folder / "pyproject.toml"),
                         f"tool.flwr.app.components.{which}", str(err)) from None


def _flat_keys(config: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else key
        out += _flat_keys(value, name) if isinstance(value, dict) else [name]
    return out
