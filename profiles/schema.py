"""Typed, frozen dataclasses from YAML mappings, rejecting what does not fit.

One loader for device profiles and scenarios alike: unknown keys, wrong types,
missing keys and out-of-range numbers become an `InputError` that names the file,
the dotted key path and the problem.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from edgetwin.common.errors import InputError

T = TypeVar("T")


_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, where built


class _Loader(_SafeLoader):  # type: ignore[misc]
    """YAML 1.1 as PyYAML reads it, but `5e6` and `1E-3` are numbers (YAML 1.2's rule),
    not text."""


_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
_Loader.yaml_implicit_resolvers = {k: [r for r in v if r[0] != "tag:yaml.org,2002:float"]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


class _Dumper(yaml.SafeDumper):
    """Writes what `_Loader` reads back the same: text such as `5e6` is quoted."""


_Dumper.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers


def dump_yaml(data: Any, **options: Any) -> str:
    """YAML that `load_yaml` reads back as the same values (key order kept)."""
    return str(yaml.dump(data, Dumper=_Dumper, sort_keys=False, **options))


def parse_yaml(text: str) -> Any:
    """One YAML document (or a `--set` value) with the loader every input file uses."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: safe


def load_yaml(path: Path) -> Any:
    """Parse a YAML file; an unreadable or malformed file is an `InputError`."""
    try:
        text = path.read_text()
    except OSError as err:
        raise InputError(str(path), "", f"cannot read ({err.strerror})") from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise InputError(str(path), "", f"{line}malformed YAML ({problem})") from None


def key_of(f: dataclasses.Field[Any]) -> str:
    """The key a field has in YAML: its name, or `metadata={"key": ...}` where the name
    cannot be one (`async` is a Python keyword). `metadata={"internal": True}` marks a
    field that is no key at all (set by the loader)."""
    return str(f.metadata.get("key", f.name))


def from_mapping(cls: type[T], data: Any, where: str, path: str = "") -> T:
    """Build dataclass `cls` from `data`; fields with defaults may be left out.

    A class may narrow its keys by the mapping's content (`accepted_keys(data)` gives
    the required and the optional keys) and check itself once built (`check(where, key)`),
    wherever it occurs."""
    if not isinstance(data, dict):
        raise InputError(where, path or "(top level)",
                         f"expected a mapping, got {_type_name(data)}")
    hints = typing.get_type_hints(cls)
    fields = {key_of(f): f for f in dataclasses.fields(cls)  # type: ignore[arg-type]
              if not f.metadata.get("internal")}
    narrow = getattr(cls, "accepted_keys", None)
    if narrow is not None:
        required, optional = narrow(data)
        allowed = [*required, *optional]
        for k in data:
            if k not in allowed:
                raise InputError(where, _join(path, str(k)), f"not a key of this kind "
                                 f"(it takes {', '.join(allowed)})")
        for k in required:
            if k not in data:
                raise InputError(where, _join(path, k), "missing required key")
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise InputError(where, _join(path, str(unknown[0])),
                         f"unknown key (expected one of: {', '.join(fields)})")
    kwargs: dict[str, Any] = {}
    for key, f in fields.items():
        if key in data:
            kwargs[f.name] = _convert(hints[f.name], data[key], where, _join(path, key))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise InputError(where, _join(path, key), "missing required key")
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        check(where, path or "(top level)")
    return obj


def _convert(tp: Any, value: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors: list[InputError] = []
        for option in options:
            try:
                return _convert(option, value, where, key)
            except InputError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise InputError(where, key, f"expected {_describe(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise InputError(where, key,
                             f"expected one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        scalar = getattr(tp, "from_scalar", None)
        if scalar is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            return scalar(value)
        text = getattr(tp, "from_text", None)
        if text is not None and isinstance(value, str):
            return text(value)
        return from_mapping(tp, value, where, key)
    if origin in (tuple, list):
        if origin is tuple and len(args) == 2 and args[0] is str and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]  # `a,b`: a list
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise InputError(where, key, f"expected a list, got {_type_name(value)}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, where, f"{key}[{i}]") for i, v in enumerate(value))
        if origin is tuple:
            if len(value) != len(args):
                raise InputError(where, key, f"expected {len(args)} items, got {len(value)}")
            return tuple(_convert(a, v, where, f"{key}[{i}]")
                         for i, (a, v) in enumerate(zip(args, value, strict=True)))
        return [_convert(args[0], v, where, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(where, key, f"expected a mapping, got {_type_name(value)}")
        return {str(k): _convert(args[1], v, where, _join(key, str(k))) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(where, key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)  # `1e4` clients
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(where, key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(where, key, f"expected a number, got {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise InputError(where, key, f"expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise InputError(where, key, f"expected text, got {_type_name(value)}")
        return str(value)
    raise TypeError(f"schema type {tp!r} at {key} is not supported")  # a bug, not bad input


def to_mapping(obj: Any) -> Any:
    """The inverse of `from_mapping`: plain dicts, lists and scalars, ready for YAML."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        own = getattr(obj, "to_data", None)  # a class that writes only the keys it uses
        if own is not None:
            return to_mapping(own())
        return {key_of(f): to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not f.metadata.get("internal")}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text", type(None): "nothing"}.get(
        type(value), type(value).__name__)


def _describe(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return " or ".join(getattr(a, "__name__", str(a)) for a in args)
