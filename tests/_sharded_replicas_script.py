"""Run in a subprocess with 4 forced host devices (see test_parallel.py)."""
import json
import sys

import numpy as np

import mtpjax  # noqa: F401
import jax
from ase.lattice.cubic import FaceCenteredCubic

from mtpjax.md import forcefields as FF
from mtpjax.md.simulation import Simulation
from mtpjax.md.stages import Stage
from mtpjax.units import FS
from mtpjax.parallel import replica_mesh, shard_replicas

assert len(jax.devices()) == 4, jax.devices()
LJ, RC = FF.lennard_jones()
atoms = FaceCenteredCubic("Ar", size=(2, 2, 2), latticeconstant=5.4)
R = 4
temps = [40.0 + 10 * r for r in range(R)]


def run(sharded: bool):
    sim = Simulation(LJ, RC, 2 * FS, [Stage("nvt", 60, 60.0, tdamp=100 * FS)], thermo_every=10, traj_every=30,
                     replicas=R, replica_temperatures=temps)
    pos = np.stack([atoms.positions] * R)
    cells = np.stack([atoms.cell.array] * R)
    st, nb = sim.init_state(pos, atoms.get_masses(), cells, np.zeros(len(atoms), int), None, seed=list(range(R)))
    if sharded:
        st, nb = shard_replicas((st, nb), replica_mesh())
    res = sim.run(st, nb)
    return res.state


a, b = run(False), run(True)
ndev = len(b.positions.sharding.device_set)
out = {
    "max_diff": float(np.abs(np.asarray(a.positions) - np.asarray(b.positions)).max()),
    "devices_used": ndev,
    "steps": int(np.asarray(b.step).max()),
}
json.dump(out, sys.stdout)
