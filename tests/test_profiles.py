"""Device profiles: the shipped ones are valid; bad ones get one line naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edgetwin.common.errors import InputError
from edgetwin.profiles.device import load_profile, parse_profile, shipped_profiles

SHIPPED = sorted(shipped_profiles())


def test_the_issue_asks_for_these_profiles() -> None:
    assert {"hi-nova-9-pro", "jetson-nano-4gb", "flagship-phone-sd8gen3", "jetson-orin-nano-8gb",
            "jetson-agx-orin-64gb", "laptop-x86-8core"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_is_valid_and_fully_sourced(name: str) -> None:
    p = load_profile(name)
    assert p.name == name
    assert all(pr.source and pr.date for pr in p.provenance.values())


def test_spec_derived_profiles_say_so_and_name_their_evidence() -> None:
    """Spec sheets, not calibration; each names the public measurements it was held
    against (docs/evidence.md), or that there are none yet."""
    for name in ("flagship-phone-sd8gen3", "jetson-orin-nano-8gb", "jetson-agx-orin-64gb",
                 "laptop-x86-8core"):
        p = load_profile(name)
        kinds = {pr.kind for pr in p.provenance.values()}
        assert "calibrated" not in kinds and "spec" in kinds
        assert "docs/evidence.md" in p.provenance["evidence"].source


def test_figures_a_reader_would_doubt_are_sourced_or_ranges() -> None:
    """The flagship's RAM is a Snapdragon 8 Gen 3 phone's (12-16 GB ship), and the
    laptop's heap retention, measured on another machine, says it is an assumed range."""
    flagship = load_profile("flagship-phone-sd8gen3")
    assert flagship.memory.ram_mb >= 12 * 1024
    assert "12-16 GB" in flagship.provenance["memory"].source
    laptop = load_profile("laptop-x86-8core").provenance["memory.heap_retention"]
    assert laptop.kind == "assumed" and "a range" in laptop.note


def _profile_dict() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(shipped_profiles()["hi-nova-9-pro"].read_text())  # type: ignore[no-any-return]


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _error(path: Path) -> str:
    with pytest.raises(InputError) as err:
        load_profile(str(path))
    return str(err.value)


def test_unknown_key(tmp_path: Path) -> None:
    d = _profile_dict()
    d["memory"]["swap_mb"] = 10
    msg = _error(_write(tmp_path, d))
    assert "bad.yaml" in msg and "memory.swap_mb" in msg and "unknown key" in msg


def test_missing_key(tmp_path: Path) -> None:
    d = _profile_dict()
    del d["network"]["uplink_mbps"]
    assert "network.uplink_mbps: missing required key" in _error(_write(tmp_path, d))


def test_a_battery_names_its_charger_and_bad_device_state_figures_are_one_line(
        tmp_path: Path) -> None:
    d = _profile_dict()
    del d["battery"]["charge_w"]
    assert "battery.charge_w: missing required key" in _error(_write(tmp_path, d))
    for section, key, value, problem in (
            ("thermal", "power_exponent", 0.5, "must be >= 1"),
            ("battery", "hot_charge_share", 1.5, "must be in (0, 1]")):
        d = _profile_dict()
        d[section][key] = value
        assert f"{section}.{key}: {problem}" in _error(_write(tmp_path, d))


def test_missing_standby_drain(tmp_path: Path) -> None:
    d = _profile_dict()
    del d["power"]["standby_w"]
    path = _write(tmp_path, d)
    with pytest.raises(InputError) as err:
        load_profile(str(path))
    assert (err.value.where, err.value.key) == (str(path), "power.standby_w")
    assert str(err.value) == f"{path}: power.standby_w: missing required key"
    assert "\n" not in str(err.value)


def test_shipped_profiles_give_standby_drain_a_source() -> None:
    for name in SHIPPED:
        p = load_profile(name)
        assert p.power.standby_w > 0
        assert p.provenance["power.standby_w"].kind == "assumed"


def test_wrong_type(tmp_path: Path) -> None:
    d = _profile_dict()
    d["compute"]["matmul"]["flops_per_s"] = "fast"
    assert "compute.matmul.flops_per_s: expected a number" in _error(_write(tmp_path, d))


def test_negative_number(tmp_path: Path) -> None:
    d = _profile_dict()
    d["storage"]["read_mb_per_s"] = -5
    assert "storage.read_mb_per_s: must be > 0" in _error(_write(tmp_path, d))


def test_number_without_provenance(tmp_path: Path) -> None:
    d = _profile_dict()
    del d["provenance"]["storage"]
    assert "storage.read_mb_per_s: has no provenance" in _error(_write(tmp_path, d))


def test_unknown_op_kind(tmp_path: Path) -> None:
    d = _profile_dict()
    d["compute"]["convolution"] = d["compute"]["matmul"]
    assert "compute.convolution: unknown op kind" in _error(_write(tmp_path, d))


def test_bad_provenance_kind(tmp_path: Path) -> None:
    d = _profile_dict()
    d["provenance"]["storage"]["kind"] = "guessed"
    assert "provenance.storage.kind: expected one of" in _error(_write(tmp_path, d))


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ncompute: {matmul: [1, 2\n")
    msg = _error(path)
    assert "broken.yaml" in msg and "malformed YAML" in msg and "line" in msg


def test_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    assert "expected a mapping" in _error(path)


def test_missing_file() -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_profile("/nonexistent/profile.yaml")


def test_incomplete_profile_missing_compute_kind(tmp_path: Path) -> None:
    d = _profile_dict()
    del d["compute"]["default"]
    assert "compute: no cost for op kind" in _error(_write(tmp_path, d))


def test_round_trip_keeps_the_hash(tmp_path: Path) -> None:
    from edgetwin.profiles.schema import to_mapping

    p = load_profile("jetson-nano-4gb")
    again = parse_profile(yaml.safe_load(yaml.safe_dump(to_mapping(p))), "round-trip")
    assert again == p and again.sha256 == p.sha256
