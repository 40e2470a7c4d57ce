"""Host-side output of MD runs: the frame written to the trajectory, the final structure."""
from __future__ import annotations

import numpy as np

from mtpjax.units import BAR, FS, FS_PER_PS, KB


def state_frame(state, dof):
    """Host-side dict of one (unbatched) state's frame data for the writers."""
    masses = np.asarray(state.masses)
    p = np.asarray(state.momenta)
    cell = np.asarray(state.cell)
    vol = abs(np.linalg.det(cell))
    ek = 0.5 * float(np.sum(p**2 / masses[:, None]))
    kin = np.einsum("na,nb->ab", p / masses[:, None], p)
    pt = (kin + np.asarray(state.virial)) / vol
    e = float(state.energy)
    return dict(
        step=int(state.step),
        time_fs=float(state.time) / FS,
        positions=np.asarray(state.positions),
        cell=cell,
        velocities=p / masses[:, None] * FS * FS_PER_PS,  # Å/ps
        observables=dict(
            potential_energy=e,
            kinetic_energy=ek,
            total_energy=e + ek,
            temperature=2.0 * ek / dof / KB,
            pressure=float(np.trace(pt)) / 3.0 / BAR,
            volume=vol,
            stress=-np.array([pt[0, 0], pt[1, 1], pt[2, 2], pt[1, 2], pt[0, 2], pt[0, 1]]),  # ASE's, eV/Å³
        ),
    )
