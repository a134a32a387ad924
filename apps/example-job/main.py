"""A job: runs, does one thing, exits 0 (or not: a non-zero exit is a failed run, and alerts)."""

import os
import time
from pathlib import Path

load = os.getloadavg()[0]
with (Path(os.environ["HH_DATA_DIR"]) / "load.csv").open("a") as f:
    f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')},{load:.2f}\n")
print(f"load {load:.2f}", flush=True)
