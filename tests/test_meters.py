"""Each meter on lines in the formats the real tools write."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgetwin.calibration.meters import android, ina3221, monsoon, procmem, rapl, tegrastats
from edgetwin.calibration.meters.nvml import NvmlEnergy
from edgetwin.common.errors import InputError

NANO_JP4 = ("RAM 1562/3964MB (lfb 364x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
            "CPU [9%@1479,6%@1479,off,off] EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 APE 25 "
            "PLL@24.5C CPU@26C PMIC@100C GPU@25C AO@33C thermal@25.5C "
            "POM_5V_IN 1943/1943 POM_5V_GPU 0/0 POM_5V_CPU 284/284")
ORIN_NANO_JP5 = ("11-24-2026 10:15:01 RAM 2875/7620MB (lfb 6x4MB) SWAP 0/3810MB (cached 0MB) "
                 "CPU [1%@729,0%@729,3%@729,0%@729,off,off] EMC_FREQ 0%@2133 "
                 "GR3D_FREQ 45%@[624,624] VIC_FREQ 729 APE 174 CV0@-256C CPU@44.343C "
                 "SOC2@40.937C CV1@-256C GPU@-256C tj@44.343C SOC1@40.625C "
                 "VDD_IN 4938mW/4938mW VDD_CPU_GPU_CV 516mW/516mW VDD_SOC 1396mW/1396mW")
AGX_ORIN = ("RAM 2875/30536MB (lfb 6478x4MB) SWAP 0/15268MB (cached 0MB) CPU [1%@729,off] "
            "GR3D_FREQ 0%@[305,305] CPU@44.3C VDD_GPU_SOC 2388mW/2388mW "
            "VDD_CPU_CV 398mW/398mW VIN_SYS_5V0 2122mW/2122mW")
THREE_VALUE = "RAM 100/3964MB CPU [5%@1479] VDD_IN 5203/5100/6012 VDD_SYS_GPU 1320/1300/2010"


def test_tegrastats_jetpack4_bare_numbers() -> None:
    s = tegrastats.parse_line(NANO_JP4)
    assert s.total_mw == 1943.0 and s.rails["POM_5V_CPU"].avg_mw == 284.0
    assert s.cpu == [(9, 1479), (6, 1479), None, None]
    assert s.gpu_load_pct == 0 and s.gpu_freq_mhz == [76]
    assert s.ram_used_mb == 1562 and s.temps_c["thermal"] == 25.5


def test_tegrastats_jetpack5_mw_rails_offline_sensors_gpc_list_timestamp() -> None:
    s = tegrastats.parse_line(ORIN_NANO_JP5)
    assert s.timestamp == "11-24-2026 10:15:01"
    assert s.total_mw == 4938.0  # VDD_IN, not VDD_IN + its parts
    assert s.temps_c["CV0"] is None and s.temps_c["GPU"] is None
    assert s.temps_c["tj"] == pytest.approx(44.343)
    assert s.gpu_load_pct == 45 and s.gpu_freq_mhz == [624, 624]
    assert s.cpu[4] is None


def test_tegrastats_without_a_total_rail_gives_none_not_a_sum() -> None:
    s = tegrastats.parse_line(AGX_ORIN)
    assert s.total_mw is None and len(s.rails) == 3
    assert tegrastats.energy_j([s], 1.0) is None


def test_tegrastats_three_value_rails() -> None:
    s = tegrastats.parse_line(THREE_VALUE)
    assert s.rails["VDD_IN"] == tegrastats.Rail(5203.0, 5100.0, 6012.0)
    assert tegrastats.energy_j([s, s], 0.5) == pytest.approx(5.203)


def test_tegrastats_malformed_line_is_named() -> None:
    with pytest.raises(InputError, match="line 7: not a tegrastats line"):
        tegrastats.parse_line("hello world", "log.txt", 7)


def test_rapl_wraps_at_max_energy_range(tmp_path: Path) -> None:
    domain = tmp_path / "intel-rapl:0"
    domain.mkdir()
    (domain / "max_energy_range_uj").write_text("262143328850\n")
    (domain / "energy_uj").write_text("262143000000\n")
    meter = rapl.Rapl.find(tmp_path)
    assert meter is not None
    start = meter.read()
    (domain / "energy_uj").write_text("671149\n")
    assert meter.energy_j(start, meter.read()) == pytest.approx(1.0, abs=1e-5)
    assert rapl.delta_j(100, 2_000_100, 262143328850) == 2.0
    (domain / "energy_uj").write_text("n/a\n")
    with pytest.raises(InputError, match="energy_uj"):
        meter.read()


def test_nvml_counter_in_millijoules() -> None:
    class FakeNvml:
        value = 1_000_000

        def nvmlInit(self) -> None: ...

        def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
            return i

        def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
            return self.value

    fake = FakeNvml()
    meter = NvmlEnergy(fake)
    a = meter.read_mj()
    fake.value += 2500
    assert meter.energy_j(a, meter.read_mj()) == 2.5
    with pytest.raises(ValueError):
        meter.energy_j(10, 5)


def test_ina3221_hwmon_layout(tmp_path: Path) -> None:
    hw = tmp_path / "1-0040" / "hwmon" / "hwmon3"
    hw.mkdir(parents=True)
    for n, (label, mv, ma) in enumerate([("VDD_IN", 5080, 984), ("VDD_CPU_GPU_CV", 5080, 100)],
                                        start=1):
        (hw / f"in{n}_label").write_text(label + "\n")
        (hw / f"in{n}_input").write_text(f"{mv}\n")
        (hw / f"curr{n}_input").write_text(f"{ma}\n")
    rails = ina3221.read_rails_mw(tmp_path)
    assert rails["VDD_IN"] == pytest.approx(4998.72)


def test_ina3221_iio_layout(tmp_path: Path) -> None:
    iio = tmp_path / "1-0040" / "iio:device0"
    iio.mkdir(parents=True)
    (iio / "rail_name_0").write_text("POM_5V_IN\n")
    (iio / "in_power0_input").write_text("1943\n")
    (iio / "rail_name_1").write_text("POM_5V_GPU\n")
    (iio / "in_voltage1_input").write_text("5000\n")
    (iio / "in_current1_input").write_text("40\n")
    assert ina3221.read_rails_mw(tmp_path) == {"POM_5V_IN": 1943.0, "POM_5V_GPU": 200.0}
    (iio / "in_power0_input").write_text("--\n")
    with pytest.raises(InputError, match="in_power0_input"):
        ina3221.read_rails_mw(tmp_path)


DUMPSYS = """Current Battery Service state:
  AC powered: false
  USB powered: true
  Wireless powered: false
  Max charging current: 500000
  Max charging voltage: 5000000
  Charge counter: 3881000
  status: 2
  health: 2
  present: true
  level: 85
  scale: 100
  voltage: 4216
  temperature: 280
  technology: Li-ion
"""


def test_dumpsys_battery() -> None:
    d = android.parse_dumpsys(DUMPSYS)
    assert d["level_pct"] == 85.0 and d["voltage_v"] == 4.216
    assert d["temperature_c"] == 28.0 and d["charging"] is True
    with pytest.raises(InputError, match="level/voltage"):
        android.parse_dumpsys("Wi-Fi is enabled")


def test_android_current_units_and_signs_normalised() -> None:
    pixel = android.discharge_w("-1250000", "4100000", android.QUIRKS["Pixel 7"])
    huawei = android.discharge_w("1250", "4100000", android.QUIRKS["RTE-AL00"])
    assert pixel == pytest.approx(5.125) and huawei == pytest.approx(5.125)
    with pytest.raises(InputError):
        android.discharge_w("unknown", "4100000", android.QUIRKS["default"])


def test_monsoon_csv(tmp_path: Path) -> None:
    path = tmp_path / "capture.csv"
    path.write_text("Time(ms),Main(mA),Main Voltage(V)\n0,1000,4.0\n500,1000,4.0\n1000,2000,4.0\n")
    energy, mean_w = monsoon.energy_j(path)
    assert energy == pytest.approx(0.5 * 4 + 0.5 * 6)
    assert mean_w == pytest.approx(5.0)
    path.write_text("Time(ms),Main(mA),Main Voltage(V)\n0,1000,4.0\n5,x,4.0\n")
    with pytest.raises(InputError, match="line 3"):
        monsoon.energy_j(path)


def test_proc_status() -> None:
    text = "Name:\tpython\nVmPeak:\t  500000 kB\nVmHWM:\t  120000 kB\nVmRSS:\t  100000 kB\n"
    d = procmem.read_status(text, "status")
    assert d["VmRSS"] == 100000 * 1024 and d["VmHWM"] == 120000 * 1024
    assert procmem.process_memory()["VmRSS"] > 0
    with pytest.raises(InputError, match="line 2"):
        procmem.read_status("Name: x\nVmRSS: lots\n", "status")
