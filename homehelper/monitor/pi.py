"""Raspberry Pi readings from sysfs and procfs: board model, temperatures, fans,
cooling devices and the firmware's throttling flags.

Every reader takes its root as an argument (tests pass a fixture tree laid out
like the real one) and reports a missing file as absent (None or an empty
list), never as an error: most machines have none of these files.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import attrs

# The firmware's get_throttled attribute sits under a different platform node
# depending on the kernel and board (soc:firmware on a Pi 4, axi/soc@... on a Pi 5).
THROTTLED_GLOBS = (
    "devices/platform/soc/soc:firmware/get_throttled",
    "devices/platform/*firmware*/get_throttled",
    "devices/platform/*/*firmware*/get_throttled",
    "devices/platform/*/*/*firmware*/get_throttled",
    "firmware/raspberrypi/get_throttled",
)

# get_throttled bits: 0-3 now, 16-19 the same since boot.
THROTTLE_BITS = {0: "under_voltage", 1: "frequency_capped", 2: "throttled", 3: "soft_temperature_limit"}
SINCE_BOOT_SHIFT = 16


@attrs.frozen
class PiPaths:
    """Where the readers look; tests point these at a fixture tree."""

    thermal: Path = Path("/sys/class/thermal")
    hwmon: Path = Path("/sys/class/hwmon")
    sys: Path = Path("/sys")  # THROTTLED_GLOBS are relative to this
    model: Path = Path("/proc/device-tree/model")
    vcgencmd: str | None = "vcgencmd"  # None: never run it

    @classmethod
    def under(cls, root: Path, vcgencmd: str | None = None) -> PiPaths:
        """The same layout below `root` (a fixture tree shaped like /)."""
        return cls(root / "sys/class/thermal", root / "sys/class/hwmon", root / "sys",
                   root / "proc/device-tree/model", vcgencmd)


def _read(path: Path | str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:  # absent, or a driver that refuses the read (EIO on some hwmon files)
        return None


def _read_int(path: Path | str) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _milli(value: int | None) -> float | None:
    return None if value is None else value / 1000.0


def read_model(path: Path) -> str | None:
    """'Raspberry Pi 5 Model B Rev 1.0'; the device tree string ends with a NUL."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    text = raw.split(b"\0", 1)[0].decode("ascii", errors="replace").strip()
    return text or None


def read_thermal(root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(zones, cooling devices) from /sys/class/thermal.

    A zone is {name, celsius, high, critical}: `critical` from its trip point of
    type critical, `high` from the lowest passive (or hot) trip, the sensor's own limits.
    """
    zones: list[dict[str, Any]] = []
    cooling: list[dict[str, Any]] = []
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return zones, cooling
    for entry in entries:
        d = root / entry
        if entry.startswith("thermal_zone"):
            temp = _read_int(d / "temp")
            if temp is None:
                continue
            high = crit = None
            for i in range(16):
                kind = _read(d / f"trip_point_{i}_type")
                if kind is None:
                    break
                value = _milli(_read_int(d / f"trip_point_{i}_temp"))
                if value is None or value <= 0:
                    continue
                if kind == "critical":
                    crit = value if crit is None else min(crit, value)
                elif kind in ("passive", "hot"):
                    high = value if high is None else min(high, value)
            zones.append({"name": _read(d / "type") or entry, "source": f"thermal/{entry}",
                          "celsius": temp / 1000.0, "high": high, "critical": crit})
        elif entry.startswith("cooling_device"):
            cooling.append({"name": _read(d / "type") or entry, "cur_state": _read_int(d / "cur_state"),
                            "max_state": _read_int(d / "max_state")})
    return zones, cooling


def read_hwmon(root: Path, skip_names: frozenset[str] = frozenset(),
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(temperatures, fans) from /sys/class/hwmon, the files psutil's sensors read.

    Devices named in `skip_names` (normalised: '-' as '_') are left out of the
    temperatures: the Pi's cpu_thermal hwmon repeats the cpu-thermal zone.
    """
    temps: list[dict[str, Any]] = []
    fans: list[dict[str, Any]] = []
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return temps, fans
    for entry in entries:
        d = root / entry
        try:
            files = os.listdir(d)
        except OSError:
            continue
        name = _read(d / "name") or entry
        for f in sorted(files):
            if f.startswith("temp") and f.endswith("_input") and name.replace("-", "_") not in skip_names:
                base = f[: -len("_input")]
                value = _read_int(d / f)
                if value is None:
                    continue
                temps.append({"name": name, "label": _read(d / f"{base}_label"), "source": f"hwmon/{entry}/{base}",
                              "celsius": value / 1000.0, "high": _milli(_read_int(d / f"{base}_max")),
                              "critical": _milli(_read_int(d / f"{base}_crit"))})
            elif f.startswith("fan") and f.endswith("_input"):
                base = f[: -len("_input")]
                rpm = _read_int(d / f)
                if rpm is None:
                    continue
                pwm = _read_int(d / f"pwm{base[3:]}")  # 0-255 duty cycle, beside fanN_input
                fans.append({"name": name, "label": _read(d / f"{base}_label"), "source": f"hwmon/{entry}/{base}",
                             "rpm": rpm, "pwm": pwm})
    return temps, fans


def find_throttled(sys_root: Path) -> Path | None:
    """The get_throttled file under `sys_root`, wherever this kernel put it."""
    for pattern in THROTTLED_GLOBS:
        for hit in sorted(glob.glob(str(sys_root / pattern))):
            return Path(hit)
    return None


def parse_throttled(text: str) -> int | None:
    """'50005' (sysfs, hex) or 'throttled=0x50005' (vcgencmd) -> 0x50005."""
    text = text.strip()
    if "=" in text:
        text = text.split("=", 1)[1].strip()
    try:
        return int(text, 16)
    except ValueError:
        return None


def decode_throttled(value: int) -> dict[str, Any]:
    now = {name: bool(value >> bit & 1) for bit, name in THROTTLE_BITS.items()}
    since = {name: bool(value >> (bit + SINCE_BOOT_SHIFT) & 1) for bit, name in THROTTLE_BITS.items()}
    return {"raw": f"0x{value:x}", "now": now, "since_boot": since,
            "any_now": any(now.values()), "any_since_boot": any(since.values()) or any(now.values())}


class ThrottleReader:
    """Reads get_throttled from sysfs, else from `vcgencmd get_throttled`.

    The sysfs path is found once (a glob per sample would cost more than the
    read); vcgencmd, a fork per call, is only used where sysfs has no file.
    """

    def __init__(self, paths: PiPaths) -> None:
        self.path = find_throttled(paths.sys)
        self.vcgencmd = shutil.which(paths.vcgencmd) if self.path is None and paths.vcgencmd else None

    @property
    def source(self) -> str | None:
        if self.path is not None:
            return str(self.path)
        return "vcgencmd" if self.vcgencmd else None

    def read(self) -> dict[str, Any] | None:
        text: str | None = None
        if self.path is not None:
            text = _read(self.path)
        elif self.vcgencmd is not None:
            try:
                out = subprocess.run([self.vcgencmd, "get_throttled"], capture_output=True, text=True,
                                     timeout=2, check=False)
                text = out.stdout if out.returncode == 0 else None
            except (OSError, subprocess.SubprocessError):
                text = None
        value = parse_throttled(text) if text else None
        if value is None:
            return None
        return {**decode_throttled(value), "source": self.source}


class PiReader:
    """Everything Pi-specific in one read; built once, read at every sample."""

    def __init__(self, paths: PiPaths | None = None) -> None:
        self.paths = paths or PiPaths()
        self.model = read_model(self.paths.model)  # fixed for the life of the machine
        self.throttle = ThrottleReader(self.paths)

    def read(self) -> dict[str, Any]:
        zones, cooling = read_thermal(self.paths.thermal)
        skip = frozenset(z["name"].replace("-", "_") for z in zones)
        hw_temps, fans = read_hwmon(self.paths.hwmon, skip)
        temps = zones + hw_temps
        return {"model": self.model, "temperatures": temps, "fans": fans, "cooling": cooling,
                "throttled": self.throttle.read()}
