"""Run SCALE-Sim on config.cfg / topology.csv / layout.csv in a folder; write its reports as JSON.

Executed by nn2hw with SCALE-Sim's own Python (``python _scalesim_driver.py FOLDER``); it imports
only the standard library and scalesim. Traces are not written (``save_disk_space=True``).
"""

import csv
import io
import json
import sys
from contextlib import redirect_stdout
from pathlib import Path


def read_report(path: Path) -> list[dict]:
    rows = list(csv.reader(path.read_text().splitlines()))
    header = [h.strip() for h in rows[0] if h.strip()]
    return [{h: float(v) for h, v in zip(header, (c.strip() for c in row)) if v != ""} for row in rows[1:] if row]


def main(folder: str) -> None:
    from scalesim.scale_sim import scalesim  # the peer's own package

    work = Path(folder)
    sim = scalesim(save_disk_space=True, verbose=False, config=str(work / "config.cfg"),
                   topology=str(work / "topology.csv"), layout=str(work / "layout.csv"))
    with redirect_stdout(io.StringIO()):
        sim.run_scale(top_path=str(work / "out"))
    run_dir = next(p for p in (work / "out").iterdir() if p.is_dir())
    result = {name: read_report(run_dir / f"{name}.csv")
              for name in ("COMPUTE_REPORT", "BANDWIDTH_REPORT", "DETAILED_ACCESS_REPORT")}
    (work / "driver_output.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
