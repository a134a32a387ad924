"""A Raspberry Pi 5's sysfs and procfs, laid out as on the board.

The values are a Pi 5's (model string, cpu-thermal 52350 m°C, get_throttled
50005, pwmfan 2350 rpm, cooling state 1 of 4, as recorded for this project).
The platform node names (soc@107c000000, axi/...) follow the Pi 5 device tree
but were not re-checked on a board here; the readers glob, so only the shape
matters. Like the real tree, /sys/class/* entries are symlinks into
/sys/devices, every sysfs file ends with a newline and the device-tree model
ends with a NUL.
"""

from __future__ import annotations

import os
from pathlib import Path

FIRMWARE = "devices/platform/soc@107c000000/soc@107c000000:firmware"

PI5_FILES = {
    # thermal zone of the SoC: trip 0 is the critical one, 1-4 drive the fan
    "devices/virtual/thermal/thermal_zone0/type": "cpu-thermal\n",
    "devices/virtual/thermal/thermal_zone0/temp": "52350\n",
    "devices/virtual/thermal/thermal_zone0/mode": "enabled\n",
    "devices/virtual/thermal/thermal_zone0/policy": "step_wise\n",
    "devices/virtual/thermal/thermal_zone0/trip_point_0_type": "critical\n",
    "devices/virtual/thermal/thermal_zone0/trip_point_0_temp": "110000\n",
    "devices/virtual/thermal/thermal_zone0/trip_point_0_hyst": "0\n",
    "devices/virtual/thermal/thermal_zone0/trip_point_1_type": "active\n",
    "devices/virtual/thermal/thermal_zone0/trip_point_1_temp": "50000\n",
    "devices/virtual/thermal/thermal_zone0/trip_point_1_hyst": "5000\n",
    "devices/virtual/thermal/thermal_zone0/trip_point_2_type": "active\n",
    "devices/virtual/thermal/thermal_zone0/trip_point_2_temp": "60000\n",
    "devices/virtual/thermal/thermal_zone0/trip_point_3_type": "active\n",
    "devices/virtual/thermal/thermal_zone0/trip_point_3_temp": "67500\n",
    "devices/virtual/thermal/thermal_zone0/trip_point_4_type": "active\n",
    "devices/virtual/thermal/thermal_zone0/trip_point_4_temp": "75000\n",
    "devices/virtual/thermal/cooling_device0/type": "pwm-fan\n",
    "devices/virtual/thermal/cooling_device0/cur_state": "1\n",
    "devices/virtual/thermal/cooling_device0/max_state": "4\n",
    # hwmon: cpu_thermal repeats the zone above; rp1_adc is the RP1 chip; pwmfan the cooler
    "devices/virtual/thermal/thermal_zone0/hwmon0/name": "cpu_thermal\n",
    "devices/virtual/thermal/thermal_zone0/hwmon0/temp1_input": "52350\n",
    "devices/platform/axi/1000120000.pcie/1f000c8000.adc/hwmon/hwmon1/name": "rp1_adc\n",
    "devices/platform/axi/1000120000.pcie/1f000c8000.adc/hwmon/hwmon1/temp1_input": "55384\n",
    "devices/platform/axi/1000120000.pcie/1f000c8000.adc/hwmon/hwmon1/in1_input": "1430\n",
    "devices/platform/cooling_fan/hwmon/hwmon2/name": "pwmfan\n",
    "devices/platform/cooling_fan/hwmon/hwmon2/fan1_input": "2350\n",
    "devices/platform/cooling_fan/hwmon/hwmon2/pwm1": "75\n",
    "devices/platform/soc@107c000000/soc@107c000000:firmware/raspberrypi-hwmon/hwmon/hwmon3/name": "rpi_volt\n",
    "devices/platform/soc@107c000000/soc@107c000000:firmware/raspberrypi-hwmon/hwmon/hwmon3/in0_lcrit_alarm": "0\n",
    # under-voltage and throttled now (bits 0, 2) and since boot (16, 18)
    f"{FIRMWARE}/get_throttled": "50005\n",
}

CLASS_LINKS = {
    "class/thermal/thermal_zone0": "devices/virtual/thermal/thermal_zone0",
    "class/thermal/cooling_device0": "devices/virtual/thermal/cooling_device0",
    "class/hwmon/hwmon0": "devices/virtual/thermal/thermal_zone0/hwmon0",
    "class/hwmon/hwmon1": "devices/platform/axi/1000120000.pcie/1f000c8000.adc/hwmon/hwmon1",
    "class/hwmon/hwmon2": "devices/platform/cooling_fan/hwmon/hwmon2",
    "class/hwmon/hwmon3": "devices/platform/soc@107c000000/soc@107c000000:firmware/raspberrypi-hwmon/hwmon/hwmon3",
}

PI5_MODEL = b"Raspberry Pi 5 Model B Rev 1.0\x00"


def build_tree(root: Path, files: dict[str, str] = PI5_FILES, links: dict[str, str] = CLASS_LINKS,
               model: bytes | None = PI5_MODEL) -> Path:
    """A tree shaped like / with sys/ and proc/device-tree/ below `root`."""
    sys = root / "sys"
    for rel, text in files.items():
        path = sys / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for rel, target in links.items():
        link = sys / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(sys / target, link.parent), link)
    if model is not None:
        (root / "proc/device-tree").mkdir(parents=True)
        (root / "proc/device-tree/model").write_bytes(model)
    return root
