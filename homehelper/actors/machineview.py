"""The read model of the machine: what the dashboard's system panel shows, read with no ask.

A refresh used to ask three actors for it (the sensors' reading, their ring of samples, the
history's chart points) and the history read its file on a worker thread, every click. Each hop
waits for a pass of the scheduler, which with twenty dashboards open is most of a refresh's time.
Now the owners write here as things change and the web reads directly:

- the sensor actor writes each reading it takes (with the alerts, levels and install space as of
  then) and its ring of background samples; a reading older than the caller allows is not served,
  and the caller asks the actor for a fresh one;
- the history actor writes the chart points it has read and clears them when a sample or a write
  changes what they would be, so a chart is read from the file once per change, not once per click.

One writer per field; trio runs one task at a time, so a reader never sees half a write.
"""

from __future__ import annotations

from typing import Any

import trio

from ..monitor.system import history_dicts

MAX_CHARTS = 16  # chart queries remembered (series x range x points): the dashboard asks for a few


class MachineView:
    __slots__ = ("_at", "_charts", "_reading", "_ring")

    def __init__(self) -> None:
        self._reading: dict[str, Any] | None = None
        self._at = float("-inf")  # trio time of the reading
        self._ring: tuple[tuple[Any, ...], ...] = ()
        self._charts: dict[tuple[str, str, int], dict[str, Any]] = {}

    # --- the sensor actor's side ---------------------------------------------
    def show(self, reading: dict[str, Any], at: float) -> None:
        """A reading as the panel shows it (taken at trio time `at`)."""
        self._reading, self._at = reading, at

    def show_ring(self, points: tuple[tuple[Any, ...], ...]) -> None:
        self._ring = points

    # --- the history actor's side ---------------------------------------------
    def keep_chart(self, key: tuple[str, str, int], chart: dict[str, Any]) -> None:
        if len(self._charts) >= MAX_CHARTS:
            self._charts.clear()
        self._charts[key] = chart

    def charts_changed(self) -> None:
        self._charts.clear()

    # --- the readers' side ---------------------------------------------------
    def reading(self, max_age: float = float("inf")) -> dict[str, Any] | None:
        """The last reading with its age, or None when there is none at most `max_age` seconds old."""
        if self._reading is None:
            return None
        age = trio.current_time() - self._at
        if age > max_age:
            return None
        return {**self._reading, "fresh": False, "age_s": round(age, 1)}

    def ring(self) -> list[dict[str, Any]]:
        """This run's background samples, oldest first (charted while the history file has fewer)."""
        return history_dicts(self._ring)

    def ring_size(self) -> int:
        """How many samples ring() would give, without making them."""
        return len(self._ring)

    def chart(self, key: tuple[str, str, int]) -> dict[str, Any] | None:
        """The points the history actor last read for `key`, while they still hold."""
        return self._charts.get(key)
