"""INA3221 power monitors on Jetson boards, read from sysfs.

JetPack 5+ exposes them through hwmon (`in1_label`, `in1_input` mV, `curr1_input`
mA); JetPack 4 through iio (`rail_name_0`, `in_voltage0_input` mV,
`in_current0_input` mA, `in_power0_input` mW).
"""

from __future__ import annotations

from pathlib import Path

from edgetwin.common.errors import InputError


def _int(path: Path) -> int:
    text = path.read_text().strip()
    try:
        return int(text)
    except ValueError:
        raise InputError(str(path), "", f"expected an integer, got {text!r}") from None


def read_rails_mw(root: Path) -> dict[str, float]:
    """Power per named rail, in mW, from either layout under `root` (a device folder)."""
    rails: dict[str, float] = {}
    for label in sorted(root.glob("**/in*_label")):  # hwmon
        n = label.name[2:-6]
        volt, curr = label.parent / f"in{n}_input", label.parent / f"curr{n}_input"
        if volt.exists() and curr.exists():
            rails[label.read_text().strip()] = _int(volt) * _int(curr) / 1000.0
    for name in sorted(root.glob("**/rail_name_*")):  # iio
        n = name.name.rsplit("_", 1)[1]
        power = name.parent / f"in_power{n}_input"
        if power.exists():
            rails[name.read_text().strip()] = float(_int(power))
        else:
            volt = name.parent / f"in_voltage{n}_input"
            curr = name.parent / f"in_current{n}_input"
            rails[name.read_text().strip()] = _int(volt) * _int(curr) / 1000.0
    if not rails:
        raise InputError(str(root), "", "no INA3221 rails found (hwmon in*_label or iio "
                         "rail_name_*)")
    return rails
