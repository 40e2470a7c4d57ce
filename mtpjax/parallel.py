"""Replicas sharded over devices (one program, every device of a node).

Batched replicas carry a leading replica axis (see
:class:`mtpjax.md.simulation.Simulation` with ``replicas=``). Placing those
arrays with a :class:`jax.sharding.NamedSharding` over a one-dimensional
device mesh makes the jitted, vmapped MD block run each device's replicas
locally (XLA's SPMD partitioner follows the input shardings; replicas do not
interact, so there is no communication inside a block).

    mesh = replica_mesh()                      # all local devices
    state, nbrs = sim.init_state(...)
    state, nbrs = shard_replicas((state, nbrs), mesh)
    sim.run(state, nbrs)

Spatial decomposition of one large system over several devices is out of
scope. On CPU, several host "devices" can be forced for testing with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (set before JAX starts).
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "replica"


def replica_mesh(devices=None) -> Mesh:
    """A 1-D mesh named ``"replica"`` over ``devices`` (default: all of them)."""
    devs = np.asarray(jax.devices() if devices is None else list(devices))
    return Mesh(devs, (AXIS,))


def shard_replicas(tree, mesh: Mesh | None = None):
    """Place every array leaf of ``tree`` sharded along its leading (replica) axis.

    Leaves whose leading dimension is not a multiple of the mesh size, and
    scalars, are replicated. Returns the placed tree.
    """
    mesh = replica_mesh() if mesh is None else mesh
    n = mesh.size
    sharded = NamedSharding(mesh, PartitionSpec(AXIS))
    replicated = NamedSharding(mesh, PartitionSpec())

    def put(x):
        if not hasattr(x, "shape"):
            return x
        if x.ndim >= 1 and x.shape[0] % n == 0 and x.shape[0] >= n:
            return jax.device_put(x, sharded)
        return jax.device_put(x, replicated)

    return jax.tree_util.tree_map(put, tree)
