"""Sensor dashboard: a HomeHelper Streamlit app charting the sensor logger's readings.

HomeHelper starts it when someone opens it and stops it when nobody uses it.
Settings come from HomeHelper's SDK when it is importable, else from the
environment HomeHelper sets (HH_APP_ID, HH_DATA_DIR, ...), so it also runs by
hand: `HH_DATA_DIR=state/data/sensor-dashboard streamlit run app.py`.
The readings are the logger's own file (data/sensor-logger/readings.jsonl,
beside this app's data folder); their absence is shown, not an error.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from pathlib import Path

import pandas as pd
import streamlit as st

LOGGER_ID = os.environ.get("SENSOR_LOGGER_ID", "sensor-logger")
MAX_POINTS = 2000  # the chart never holds more than this, however long the file


def settings() -> dict[str, str]:
    try:
        from homehelper import sdk  # HomeHelper's SDK, when this app runs inside HomeHelper

        return dict(sdk.settings())
    except Exception:  # the SDK is missing or older: the environment says the same
        return {k: v for k, v in os.environ.items() if k.startswith("HH_")}


def readings_file(cfg: dict[str, str]) -> Path:
    data_dir = Path(cfg.get("HH_DATA_DIR") or cfg.get("data_dir") or "data")
    return data_dir.parent / LOGGER_ID / "readings.jsonl"


@st.cache_data(ttl=5, show_spinner=False)
def load(path: str, mtime: float) -> pd.DataFrame:
    """The last MAX_POINTS readings; `mtime` in the key reloads when the file changes."""
    rows: deque[dict] = deque(maxlen=MAX_POINTS)
    for name in (Path(path).with_name("readings.1.jsonl"), Path(path)):
        try:
            with open(name) as f:
                for line in f:
                    try:
                        rows.append(json.loads(line))
                    except ValueError:
                        continue  # a line cut by a power loss
        except FileNotFoundError:
            continue
    frame = pd.DataFrame(list(rows), columns=["at", "temperature_c", "humidity_pct"])
    frame["time"] = pd.to_datetime(frame["at"], unit="s")
    return frame.set_index("time")


cfg = settings()
st.set_page_config(page_title="Sensor dashboard", page_icon="🌡️", layout="wide")
st.title("Sensor dashboard")
st.caption(f"Readings of `{LOGGER_ID}` · node {cfg.get('HH_NODE_ID', 'main')}")

path = readings_file(cfg)
mtime = path.stat().st_mtime if path.exists() else 0.0
frame = load(str(path), mtime)

if frame.empty:
    st.info(f"No readings yet. Start the **{LOGGER_ID}** app on the dashboard; its readings will show here.")
    st.stop()

hours = st.select_slider("Window", options=[0.25, 1, 6, 24, 24 * 7], value=6,
                         format_func=lambda h: f"{h * 60:.0f} min" if h < 1 else f"{h:g} h")
recent = frame[frame["at"] >= time.time() - hours * 3600]
if recent.empty:
    recent = frame.tail(100)

last = frame.iloc[-1]
before = frame.iloc[-2] if len(frame) > 1 else last
temp, hum, at = float(last["temperature_c"]), float(last["humidity_pct"]), float(last["at"])
col1, col2, col3 = st.columns(3)
col1.metric("Temperature", f"{temp:.1f} °C", f"{temp - float(before['temperature_c']):+.2f}")
col2.metric("Humidity", f"{hum:.0f} %", f"{hum - float(before['humidity_pct']):+.1f}")
col3.metric("Readings", f"{len(frame)}", f"last {time.time() - at:.0f} s ago", delta_color="off")

st.subheader("Temperature (°C)")
st.line_chart(recent["temperature_c"], height=260)
st.subheader("Humidity (%)")
st.line_chart(recent["humidity_pct"], height=260)

with st.expander("Latest readings"):
    st.dataframe(frame.tail(20).iloc[::-1])
if st.button("Refresh"):
    st.rerun()
