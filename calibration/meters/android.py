"""Android battery power: sysfs `current_now`/`voltage_now` and `dumpsys battery`.

Vendors disagree on units and signs: `current_now` is microamps on most devices,
milliamps on some, and negative while discharging on some, positive on others.
A per-device-model setting normalises them; power is reported positive while
the battery discharges.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgetwin.common.errors import InputError


@dataclass(frozen=True)
class Quirks:
    current_unit: str = "uA"  # or "mA"
    voltage_unit: str = "uV"  # or "mV"
    discharge_sign: int = -1  # the sign current_now has while discharging


# Settings by `ro.product.model` (extend for the phones on your desk).
QUIRKS: dict[str, Quirks] = {
    "default": Quirks(),
    "RTE-AL00": Quirks(current_unit="mA", discharge_sign=+1),  # a Huawei nova 9 Pro SKU
    "Pixel 7": Quirks(discharge_sign=-1),
    "SM-S9210": Quirks(discharge_sign=+1),  # a Galaxy S24 SKU
}


def discharge_w(current_now: str, voltage_now: str, quirks: Quirks) -> float:
    """Battery discharge power from the two sysfs files' text."""
    try:
        current, voltage = int(current_now.strip()), int(voltage_now.strip())
    except ValueError:
        raise InputError("power_supply", "current_now/voltage_now",
                         f"expected integers, got {current_now!r}, {voltage_now!r}") from None
    amps = current / (1e6 if quirks.current_unit == "uA" else 1e3)
    volts = voltage / (1e6 if quirks.voltage_unit == "uV" else 1e3)
    return amps * quirks.discharge_sign * volts


def parse_dumpsys(text: str, where: str = "dumpsys battery") -> dict[str, float | bool | str]:
    """`dumpsys battery`: level %, voltage V, temperature C, and which charger is on."""
    raw: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and value.strip():
            raw[key.strip()] = value.strip()
    if "level" not in raw or "voltage" not in raw:
        raise InputError(where, "level/voltage", "missing: not `dumpsys battery` output")
    out: dict[str, float | bool | str] = {}
    try:
        scale = float(raw.get("scale", "100"))
        out["level_pct"] = float(raw["level"]) * 100.0 / scale
        out["voltage_v"] = float(raw["voltage"]) / 1000.0
        if "temperature" in raw:
            out["temperature_c"] = float(raw["temperature"]) / 10.0
    except ValueError as err:
        raise InputError(where, "value", str(err)) from None
    for key in ("AC powered", "USB powered", "Wireless powered"):
        if key in raw:
            out[key.split()[0].lower() + "_powered"] = raw[key] == "true"
    out["charging"] = any(v is True for k, v in out.items() if k.endswith("_powered"))
    return out
