"""An MTP as a jax-md energy: :func:`mtp_neighbor_list` returns ``(neighbor_fn, energy_fn)`` in the style of
``jax_md.energy.*_neighbor_list``.

>>> from jax_md import partition, simulate, space
>>> displacement, shift = space.periodic_general(box)                    # box: cell.T, upper triangular (Å)
>>> neighbor_fn, energy_fn = mtp_neighbor_list(displacement, box, mtp, species)
>>> nbrs = neighbor_fn.allocate(R)                                       # R: fractional coordinates (N, 3)
>>> init, step = simulate.nvt_nose_hoover(energy_fn, shift, dt, kT)
>>> state = init(key, R, mass=masses, neighbor=nbrs)
>>> nbrs = nbrs.update(state.position); state = step(state, neighbor=nbrs)

``energy_fn(R, neighbor, **kwargs)`` is the MTP's energy in eV; it passes ``kwargs`` to the displacement
function, as jax-md's own potentials do, so ``box=`` at call time (``simulate.npt_nose_hoover``) and
``perturbation=`` (``quantity.stress``, ``quantity.pressure``) work. Forces (``quantity.force``) are −∂E/∂R in
eV/Å (Cartesian also for fractional ``R``: jax-md's displacement defines its derivative so); jax-md's stress
is −(1/V) ∂E/∂ε in eV/Å³, i.e. minus ASE's ``get_stress()`` (plus the kinetic term if velocities are given).

jax-md has no units: with this energy (eV, Å) and masses in amu, its time unit is Å·√(amu/eV) ≈ 10.18 fs
(``dt = 1.0 * mtpjax.units.FS`` is one femtosecond) and ``kT`` is in eV.

Conventions of jax-md that apply here: a box is a scalar (cube), a (3,) vector (orthorhombic) or a (3, 3)
matrix whose *columns* are the lattice vectors (``atoms.cell[:].T``), upper triangular for its neighbour list
(an ASE cell in standard form, ``atoms.cell.standard_form()``, has lower-triangular rows, i.e. an
upper-triangular transpose). jax-md's neighbour lists and displacements use the minimum-image convention: one
entry per pair of atoms, no periodic image of an atom beside another image of it. That is exact only while
every perpendicular width of the cell is at least twice the cutoff; :func:`mtp_neighbor_list` and
``neighbor_fn.allocate`` refuse narrower periodic cells (:class:`~mtpjax.errors.ConfigurationError`), and inside
jit (``npt_nose_hoover`` shrinking the box) the energy turns NaN instead of silently missing pairs. For small
cells use mtpjax's own MD (:func:`mtpjax.md.simulate`, ``mtpjax md``) or :class:`MTPCalculator`, whose
neighbour lists hold every image.
"""
from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mtpjax.errors import ConfigurationError
from mtpjax.potential.model import MTP

NARROW_CELL_HINT = ("jax-md's neighbour lists and periodic displacements use the minimum-image convention (one "
                    "entry per pair, no periodic images of the same atom); use a larger supercell (e.g. "
                    "atoms.repeat), a smaller dr_threshold, or mtpjax's own MD (mtpjax.md.simulate, `mtpjax md`) "
                    "or MTPCalculator, which handle cells of any size")


def box_matrix(box):
    """A jax-md box (scalar cube edge, (3,) orthorhombic edges or (3, 3) with lattice vectors as columns, Å)
    as a (3, 3) matrix with the lattice vectors as columns."""
    box = jnp.asarray(box)
    if box.ndim == 0:
        return box * jnp.eye(3, dtype=box.dtype)
    if box.ndim == 1:
        return jnp.diag(box)
    return box


def perpendicular_widths(box):
    """Distances (3,) in Å between opposite faces of a jax-md box (see :func:`box_matrix`): width a is
    V / |b × c|. A minimum-image neighbour list is exact for a cutoff up to half the smallest periodic width."""
    t = box_matrix(box)
    a, b, c = t[:, 0], t[:, 1], t[:, 2]
    vol = jnp.abs(jnp.dot(a, jnp.cross(b, c)))
    return vol / jnp.linalg.norm(jnp.stack([jnp.cross(b, c), jnp.cross(c, a), jnp.cross(a, b)]), axis=1)


def periodic_axes(displacement, box, fractional_coordinates: bool) -> tuple[bool, bool, bool]:
    """Which lattice directions ``displacement`` wraps (host side): the displacement between the points at
    0.1 and 0.9 of a lattice vector is 0.2 of it in a periodic direction, 0.8 of it in free space."""
    t = np.asarray(box_matrix(box), dtype=float)
    frac = np.eye(3)
    p, q = 0.1 * frac, 0.9 * frac  # one probe pair per lattice direction (rows)
    if not fractional_coordinates:
        p, q = p @ t.T, q @ t.T
    d = np.asarray(jax.vmap(displacement)(jnp.asarray(q), jnp.asarray(p)))
    return tuple(bool(x) for x in np.linalg.norm(d, axis=1) < 0.5 * np.linalg.norm(t, axis=0))


def check_cell_width(box, periodic, cutoff: float, where: str = "") -> None:
    """Raise :class:`ConfigurationError` if a periodic width of ``box`` (a concrete jax-md box) is under
    2 × ``cutoff`` (Å); traced boxes are not checked here (see the module doc)."""
    if isinstance(box, jax.core.Tracer):
        return
    widths = np.asarray(perpendicular_widths(box), dtype=float)
    narrow = [f"{'abc'[k]}: {w:.3f} Å" for k, w in enumerate(widths) if periodic[k] and w < 2 * cutoff]
    if narrow:
        raise ConfigurationError(
            f"{where}the periodic cell is narrower than 2 × {cutoff:g} Å (cutoff + dr_threshold) across "
            f"{', '.join(narrow)}; {NARROW_CELL_HINT}"
        )


def mtp_energy(mtp: MTP, displacement, species, periodic=(True, True, True), box=None):
    """``energy_fn(R, neighbor, **kwargs) -> E`` (eV) of ``mtp`` on a jax-md Dense neighbour list.

    R (N, 3) positions (as ``displacement`` expects them: fractional or Å); ``neighbor.idx`` (N, M) int padded
    with N; ``species`` (N,) int indices into ``mtp.species`` (MLIP type order), or ``species=`` at call time.
    ``kwargs`` go to ``displacement`` (``box``, ``new_box``, ``perturbation``...). The pair vectors are
    r_ij = displacement(R_j, R_i) (Å). NaN if a ``periodic`` width of the box in use (``new_box`` or ``box`` at
    call time, else ``box``) is under 2 × cutoff (minimum image no longer exact); no check if all are None.
    """
    species0 = None if species is None else jnp.asarray(species, dtype=jnp.int32)
    cutoff = float(mtp.cutoff)
    periodic = np.asarray(periodic, dtype=bool)

    def energy_fn(R, neighbor, **kwargs):
        sp = kwargs.pop("species", species0)
        sp = jnp.zeros(R.shape[0], jnp.int32) if sp is None else sp
        idx = neighbor.idx
        if idx.ndim != 2:
            raise ConfigurationError("the MTP energy needs a Dense jax-md neighbour list (format=partition.Dense)")
        valid = idx < R.shape[0]
        j = jnp.where(valid, idx, 0)
        disp = partial(displacement, **kwargs)
        rvec = jax.vmap(jax.vmap(disp, (0, None)), (0, 0))(R[j], R)  # (N, M, 3): R_j − R_i, Å
        rvec = jnp.where(valid[..., None], rvec, 0.0)
        e, _ = mtp.energy_from_pairs(rvec, valid, sp, sp[j])
        box_now = kwargs.get("new_box", kwargs.get("box", box))
        if box_now is not None and periodic.any():
            widths = perpendicular_widths(jax.lax.stop_gradient(box_now))
            ok = jnp.all(jnp.where(jnp.asarray(periodic), widths >= 2 * cutoff, True))
            e = jnp.where(ok, e, jnp.nan)
        return e

    return energy_fn


def mtp_neighbor_list(displacement_or_box, box, mtp, species=None, fractional_coordinates: bool = True,
                      dr_threshold: float = 0.5, **neighbor_kwargs):
    """``(neighbor_fn, energy_fn)`` of an MTP for jax-md, like ``jax_md.energy.*_neighbor_list``.

    displacement_or_box : a jax-md displacement (``space.periodic_general``, ``space.periodic``,
        ``space.free``), or a box, for which ``space.periodic_general(box, fractional_coordinates)`` is used.
    box : the jax-md box (see the module doc), Å; its periodic widths must be ≥ 2 × (cutoff + dr_threshold).
    mtp : an :class:`~mtpjax.potential.model.MTP` or the path of an ``.mtp``/``.almtp`` file.
    species : (N,) int, the species index (0…C−1, MLIP type order) of every atom; None for a one-species
        potential (then every atom is species 0), or pass ``species=`` to ``energy_fn``.
    fractional_coordinates : positions in the unit cube (as ``space.periodic_general``'s default; needed for
        ``npt_nose_hoover`` and ``box=`` at call time) or in Å.
    dr_threshold : Å of neighbour-list skin (jax-md rebuilds when an atom moved more than half of it).
    neighbor_kwargs : passed to ``jax_md.partition.neighbor_list`` (``capacity_multiplier``,
        ``disable_cell_list``...). ``format`` must be ``partition.Dense``: a site energy needs each atom's
        whole neighbourhood (jax-md's own many-body potentials, Stillinger–Weber and Tersoff, are Dense too).

    ``neighbor_fn.allocate(R, box=...)`` checks the cell width and the species against ``R``; ``energy_fn(R,
    neighbor, **kwargs)`` gives E in eV (module doc: forces, stress, units, NPT).
    """
    from jax_md import partition, space

    mtp = mtp if isinstance(mtp, MTP) else MTP.from_file(mtp)
    fmt = neighbor_kwargs.pop("format", partition.Dense)
    if fmt is not partition.Dense:
        raise ConfigurationError(
            f"mtp_neighbor_list supports format=partition.Dense only (got {fmt}): an MTP site energy needs "
            "each atom's whole neighbourhood, as jax-md's Stillinger-Weber and Tersoff potentials do"
        )
    if callable(displacement_or_box):
        displacement = displacement_or_box
    else:
        displacement, _ = space.periodic_general(displacement_or_box, fractional_coordinates=fractional_coordinates)
    species = _species(mtp, species)
    periodic = (True, True, True)
    if not isinstance(box, jax.core.Tracer):
        periodic = periodic_axes(displacement, box, fractional_coordinates)
    list_cutoff = float(mtp.cutoff) + float(dr_threshold)
    check_cell_width(box, periodic, list_cutoff)
    fns = partition.neighbor_list(displacement, box, float(mtp.cutoff), dr_threshold,
                                  fractional_coordinates=fractional_coordinates, format=fmt, **neighbor_kwargs)

    def allocate(R, extra_capacity: int = 0, **kwargs):
        check_cell_width(kwargs.get("box", box), periodic, list_cutoff, "neighbor_fn.allocate: ")
        if species is not None and len(species) != R.shape[0]:
            raise ConfigurationError(f"species has {len(species)} entries but R has {R.shape[0]} atoms")
        nbrs = fns.allocate(R, extra_capacity, **kwargs)
        # jax-md keeps the fractional cell size, a static field, as a 0-d array: two such lists then fail
        # JAX's cache lookups ("arrays cannot be passed as metadata fields"); a float compares plainly
        if nbrs.cell_size is not None and not isinstance(nbrs.cell_size, float):
            nbrs = dataclasses.replace(nbrs, cell_size=float(nbrs.cell_size))
        return nbrs

    return (partition.NeighborListFns(allocate, fns.update),
            mtp_energy(mtp, displacement, species, periodic, box))


def _species(mtp: MTP, species):
    """The species indices (N,) int32 on the host, checked against the potential (None: one species)."""
    if species is None:
        if mtp.n_species != 1:
            raise ConfigurationError(
                f"the potential has {mtp.n_species} species; pass species=[...] (indices 0..{mtp.n_species - 1} "
                "of every atom, in MLIP type order)"
            )
        return None
    if isinstance(species, jax.core.Tracer):
        return species
    sp = np.asarray(species)
    if sp.ndim != 1 or not np.issubdtype(sp.dtype, np.integer) or (sp.size and (sp.min() < 0 or
                                                                                sp.max() >= mtp.n_species)):
        raise ConfigurationError(
            f"species must be a 1-D array of integers in 0..{mtp.n_species - 1} (the potential's species "
            f"{list(mtp.species)}, in order)"
        )
    return sp.astype(np.int32)
