"""The installed edgetwin's version, recorded beside every result and profile."""

from __future__ import annotations


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edgetwin")
    except PackageNotFoundError:
        return "unknown"
