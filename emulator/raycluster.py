"""Joining a Ray cluster (or starting one on this machine) for work that outgrows one
process: the ClientApps of a Flower app, the runs of a sweep."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from edgetwin.common.errors import InputError

DEFAULT_PORTS = {"ray": 10001, "": 6379}  # Ray Client, and a cluster's GCS
CONNECT_TIMEOUT_S = 5.0


def connect(address: str, flag: str = "--ray") -> bool:
    """Join the cluster at `address` (`auto`: the one this machine is part of, or a new
    local one); True when this call started Ray (and should shut it down). An address
    where nothing answers is an `InputError`, found in seconds rather than after Ray's
    own retries."""
    check_address(address, flag)
    import ray

    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                               "runtime_env": {"env_vars": {"OMP_NUM_THREADS": "1"}}}
    try:
        ray.init(address=address, **options)
    except ConnectionError as err:
        if address != "auto":
            raise InputError(flag, address, f"no Ray cluster there ({err})") from None
        ray.init(**options)  # no cluster to join: one on this machine
    return True


def check_address(address: str, flag: str = "--ray") -> None:
    """Ray is installed, and an address other than `auto` accepts a connection."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise InputError(flag, address, "Ray is not installed: pip install 'edgetwin[ray]'"
                         ) from None
    if address != "auto":
        _check_reachable(address, flag)


def _check_reachable(address: str, flag: str) -> None:
    """`host:port` or `ray://host:port` must accept a connection."""
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        host, port = parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme, 6379)
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise InputError(flag, address, "expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise InputError(flag, address, f"no Ray cluster answers at {host}:{port} "
                         f"({reason})") from None
