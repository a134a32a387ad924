"""Pi readings parsed from a Pi 5's sysfs/procfs layout (fixture tree), and absent elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from homehelper.monitor.pi import (
    PiPaths,
    PiReader,
    ThrottleReader,
    decode_throttled,
    find_throttled,
    parse_throttled,
    read_hwmon,
    read_model,
    read_thermal,
)

from .pi5_tree import build_tree


def test_model_drops_the_device_tree_nul(pi5_root: Path) -> None:
    assert read_model(pi5_root / "proc/device-tree/model") == "Raspberry Pi 5 Model B Rev 1.0"


def test_thermal_zone_and_cooling_device(pi5_root: Path) -> None:
    zones, cooling = read_thermal(pi5_root / "sys/class/thermal")
    assert zones == [{"name": "cpu-thermal", "source": "thermal/thermal_zone0", "celsius": 52.35,
                      "high": None, "critical": 110.0}]  # active trips drive the fan: not limits
    assert cooling == [{"name": "pwm-fan", "cur_state": 1, "max_state": 4}]


def test_hwmon_fan_and_temperatures_without_the_zone_twice(pi5_root: Path) -> None:
    temps, fans = read_hwmon(pi5_root / "sys/class/hwmon", frozenset({"cpu_thermal"}))
    assert [(t["name"], t["celsius"]) for t in temps] == [("rp1_adc", 55.384)]
    assert fans == [{"name": "pwmfan", "label": None, "source": "hwmon/hwmon2/fan1", "rpm": 2350, "pwm": 75}]
    temps, _ = read_hwmon(pi5_root / "sys/class/hwmon")
    assert [t["name"] for t in temps] == ["cpu_thermal", "rp1_adc"]


def test_hwmon_limits_are_read_when_the_sensor_has_them(tmp_path: Path) -> None:
    build_tree(tmp_path, {"class/hwmon/hwmon0/name": "coretemp\n", "class/hwmon/hwmon0/temp1_input": "41000\n",
                          "class/hwmon/hwmon0/temp1_label": "Package id 0\n",
                          "class/hwmon/hwmon0/temp1_max": "80000\n", "class/hwmon/hwmon0/temp1_crit": "100000\n"},
               {}, None)
    temps, fans = read_hwmon(tmp_path / "sys/class/hwmon")
    assert temps == [{"name": "coretemp", "label": "Package id 0", "source": "hwmon/hwmon0/temp1",
                      "celsius": 41.0, "high": 80.0, "critical": 100.0}]
    assert fans == []


def test_throttled_bits_now_and_since_boot(pi5_root: Path) -> None:
    path = find_throttled(pi5_root / "sys")
    assert path is not None and path.name == "get_throttled" and "firmware" in path.parent.name
    reader = ThrottleReader(PiPaths.under(pi5_root))
    got = reader.read()
    assert got is not None
    assert got["raw"] == "0x50005"
    assert got["now"] == {"under_voltage": True, "frequency_capped": False, "throttled": True,
                          "soft_temperature_limit": False}
    assert got["since_boot"] == got["now"]
    assert got["any_now"] and got["any_since_boot"]


def test_throttled_since_boot_only() -> None:
    got = decode_throttled(0x80000)
    assert not got["any_now"] and got["any_since_boot"]
    assert got["since_boot"]["soft_temperature_limit"] and not got["since_boot"]["under_voltage"]
    assert decode_throttled(0) == {**decode_throttled(0), "any_now": False, "any_since_boot": False}


def test_pi4_path_is_found_too(tmp_path: Path) -> None:
    build_tree(tmp_path, {"devices/platform/soc/soc:firmware/get_throttled": "0\n"}, {}, None)
    reader = ThrottleReader(PiPaths.under(tmp_path))
    assert reader.source is not None and reader.source.endswith("soc/soc:firmware/get_throttled")
    assert reader.read()["raw"] == "0x0"  # type: ignore[index]


@pytest.mark.parametrize(("text", "value"), [("50005", 0x50005), ("throttled=0x50005", 0x50005),
                                             ("0x0\n", 0), ("garbage", None), ("", None)])
def test_parse_throttled(text: str, value: int | None) -> None:
    assert parse_throttled(text) == value


def test_vcgencmd_is_the_fallback_without_sysfs(tmp_path: Path) -> None:
    # vcgencmd cannot run off a Pi: a script with its exact output stands in for it
    tool = tmp_path / "vcgencmd"
    tool.write_text("#!/bin/sh\n[ \"$1\" = get_throttled ] && echo throttled=0x80000\n")
    tool.chmod(0o755)
    reader = ThrottleReader(PiPaths.under(tmp_path / "empty", vcgencmd=str(tool)))
    assert reader.source == "vcgencmd"
    got = reader.read()
    assert got is not None and got["raw"] == "0x80000" and got["since_boot"]["soft_temperature_limit"]


def test_full_pi5_read(pi5_root: Path) -> None:
    got = PiReader(PiPaths.under(pi5_root)).read()
    assert got["model"] == "Raspberry Pi 5 Model B Rev 1.0"
    assert [t["name"] for t in got["temperatures"]] == ["cpu-thermal", "rp1_adc"]
    assert got["fans"][0]["rpm"] == 2350
    assert got["throttled"]["raw"] == "0x50005"


def test_an_empty_machine_reports_everything_absent(tmp_path: Path) -> None:
    got = PiReader(PiPaths.under(tmp_path / "nothing")).read()
    assert got == {"model": None, "temperatures": [], "fans": [], "cooling": [], "throttled": None}


def test_broken_files_are_absent_not_errors(tmp_path: Path) -> None:
    build_tree(tmp_path, {"class/thermal/thermal_zone0/type": "cpu-thermal\n",
                          "class/thermal/thermal_zone0/temp": "not a number\n",
                          "class/hwmon/hwmon0/fan1_input": "\n",
                          "devices/platform/soc/soc:firmware/get_throttled": "zz\n"}, {}, b"")
    got = PiReader(PiPaths.under(tmp_path)).read()
    assert got == {"model": None, "temperatures": [], "fans": [], "cooling": [], "throttled": None}


def test_this_machine_reads_without_error() -> None:
    got = PiReader().read()
    assert set(got) == {"model", "temperatures", "fans", "cooling", "throttled"}
    if not os.path.exists("/proc/device-tree/model"):
        assert got["model"] is None
    for t in got["temperatures"]:
        assert -40.0 < t["celsius"] < 150.0
