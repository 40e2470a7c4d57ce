"""CSV thermo logs of MD runs (one row every ``thermo_every`` steps), resumable by byte offset."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mtpjax.units import AMU_PER_A3_TO_G_CM3
import csv


class ThermoLog:
    """CSV thermo log (step, time_fs, T, P, E_pot, E_kin, conserved, volume, density...).

    ``offset``: resume by truncating the file to that many bytes.
    """

    def __init__(self, path, columns, mass_amu: float, mode="w", offset=None):
        self.path = Path(path)
        self.columns = list(columns)
        self.mass = float(mass_amu)
        if mode == "a" and self.path.exists():
            with open(self.path, "r+b") as fh:
                fh.truncate(offset if offset is not None else fh.seek(0, 2))
            self.fh = open(self.path, "a")
        else:
            self.fh = open(self.path, "w")
            self.fh.write(",".join(self.columns + ["density_g_cm3"]) + "\n")
            self.fh.flush()

    def write(self, rows):
        for r in np.atleast_2d(rows):
            vals = list(r)
            vals[0] = int(round(vals[0]))
            dens = self.mass / r[self.columns.index("volume_A3")] * AMU_PER_A3_TO_G_CM3
            self.fh.write(",".join(f"{v}" if isinstance(v, int) else f"{v:.10g}" for v in vals) + f",{dens:.8g}\n")
        self.fh.flush()

    def tell(self) -> int:
        self.fh.flush()
        return self.fh.tell()

    def close(self):
        self.fh.close()


def read_thermo(path) -> dict:
    """Read a thermo CSV into {column: array}."""
    with open(path) as fh:
        rows = list(csv.reader(fh))
    head = rows[0]
    data = np.array([[float(x) for x in r] for r in rows[1:]]) if len(rows) > 1 else np.zeros((0, len(head)))
    return {h: data[:, k] for k, h in enumerate(head)}


