"""Fixed-capacity neighbour lists for periodic (triclinic) and open cells.

A neighbour list stores, for every atom *i*, up to ``capacity`` pairs
``(j, S)`` with ``S`` an integer lattice translation, such that
``r_ij = x_j + S @ cell - x_i`` is shorter than ``cutoff + skin``. Several
periodic images of the same atom *j* (and images of *i* itself) appear as
separate pairs, so cells smaller than twice the cutoff are handled exactly as
MLIP handles them.

Design (jax-md style): :func:`neighbor_list` returns a :class:`NeighborListFns`
with ``allocate`` (host side: decides the static capacity and image set) and
``update`` (jit-compatible: rebuilds into the same shapes and raises the
``did_overflow`` flag instead of silently dropping pairs). The caller must
check ``did_overflow`` outside jit and re-allocate; :func:`check_overflow`
does that with a clear error.

Shapes: ``idx`` (N, M) int32 padded with N; ``shifts`` (N, M, 3) int32
lattice translations (multiples of the cell rows); ``reference_positions``
(N, 3) Å positions at the last rebuild; ``reference_cell`` (3, 3) Å.

Two builders:
* ``"dense"`` — all (i, j, S) candidates; O(N² · n_images); exact for any
  cell, the default for small systems (training cells, N ≲ 3000).
* ``"cell"`` — linked cells on fractional coordinates, O(N); requires every
  periodic width ≥ 3 bins of ``cutoff + skin`` and is selected for large
  periodic systems.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mtpjax.errors import ConfigurationError, NeighborListOverflow
from scipy.spatial import cKDTree
from ase.neighborlist import primitive_neighbor_list


class NeighborList(NamedTuple):
    """Pytree holding a padded neighbour list (see module docstring)."""

    idx: jax.Array
    shifts: jax.Array
    reference_positions: jax.Array
    reference_cell: jax.Array
    did_overflow: jax.Array
    max_count: jax.Array


def complete_cell(cell, pbc):
    """Return a (3, 3) invertible matrix whose periodic rows equal ``cell``'s.

    Non-periodic rows (zero rows in MLIP files) are replaced by unit vectors
    orthogonal to the periodic ones, so fractional coordinates exist; nothing
    is ever wrapped along those directions. ``pbc`` must be a static tuple.
    """
    cell = jnp.asarray(cell)
    npbc = sum(bool(p) for p in pbc)
    if npbc == 3:
        return cell
    eye = jnp.eye(3, dtype=cell.dtype)
    if npbc == 0:
        return eye
    rows = [cell[k] for k in range(3)]
    per = [k for k in range(3) if pbc[k]]
    non = [k for k in range(3) if not pbc[k]]
    if npbc == 2:
        n = jnp.cross(rows[per[0]], rows[per[1]])
        rows[non[0]] = n / jnp.linalg.norm(n)
    else:  # one periodic direction a: two unit vectors orthogonal to it
        a = rows[per[0]] / jnp.linalg.norm(rows[per[0]])
        # pick the Cartesian axis least aligned with a
        trial = eye[jnp.argmin(jnp.abs(a))]
        u = trial - jnp.dot(trial, a) * a
        u = u / jnp.linalg.norm(u)
        v = jnp.cross(a, u)
        rows[non[0]] = u
        rows[non[1]] = v
    return jnp.stack(rows)


def image_counts(cell: np.ndarray, pbc, cutoff: float) -> tuple[int, int, int]:
    """Number of lattice translations needed per direction (host side).

    With fractional differences reduced to [-0.5, 0.5], a translation S_a is
    needed iff |S_a| ≤ floor(cutoff / d_a + 0.5), d_a the spacing of the
    lattice planes spanned by the other two rows.
    """
    cell = np.asarray(cell, dtype=float)
    out = []
    full = _complete_cell_np(cell, pbc) if not all(pbc) else cell
    vol = abs(np.linalg.det(full))
    for a in range(3):
        if not pbc[a]:
            out.append(0)
            continue
        b, c = full[(a + 1) % 3], full[(a + 2) % 3]
        d = vol / np.linalg.norm(np.cross(b, c))
        out.append(int(math.floor(cutoff / d + 0.5)))
    return tuple(out)


def _images(counts) -> np.ndarray:
    rng = [np.arange(-n, n + 1) for n in counts]
    g = np.stack(np.meshgrid(*rng, indexing="ij"), -1).reshape(-1, 3)
    # put S = 0 first (purely cosmetic: direct neighbours first)
    order = np.argsort(np.abs(g).sum(1), kind="stable")
    return g[order].astype(np.int32)


def _compact(mask, cand_j, cand_s, capacity: int, n: int):
    """Keep the first ``capacity`` True entries of each row of ``mask``.

    mask (N, P) bool, cand_j (N, P) int, cand_s (N, P, 3) int. Returns idx
    (N, capacity), shifts (N, capacity, 3), max_count.
    """
    pos = jnp.cumsum(mask, axis=1, dtype=jnp.int32) - 1
    count = pos[:, -1] + 1 if mask.shape[1] else jnp.zeros(mask.shape[0], jnp.int32)
    slot = jnp.where(mask & (pos < capacity), pos, capacity)
    rows = jnp.arange(mask.shape[0])[:, None]
    idx = jnp.full((mask.shape[0], capacity + 1), n, dtype=jnp.int32)
    idx = idx.at[rows, slot].set(cand_j.astype(jnp.int32), mode="drop")
    shifts = jnp.zeros((mask.shape[0], capacity + 1, 3), dtype=jnp.int32)
    shifts = shifts.at[rows, slot].set(cand_s.astype(jnp.int32), mode="drop")
    return idx[:, :capacity], shifts[:, :capacity], jnp.max(count, initial=0)


def _compact_flat(mask, capacity: int):
    """Positions (N, capacity) of the first ``capacity`` True entries of each row (−1 padded) and max count."""
    n, p = mask.shape
    pos = jnp.cumsum(mask, axis=1, dtype=jnp.int32) - 1
    count = pos[:, -1] + 1 if p else jnp.zeros(n, jnp.int32)
    slot = jnp.where(mask & (pos < capacity), pos, capacity)
    rows = jnp.arange(n)[:, None]
    cols = jnp.broadcast_to(jnp.arange(p, dtype=jnp.int32)[None, :], (n, p))
    sel = jnp.full((n, capacity + 1), -1, dtype=jnp.int32)
    sel = sel.at[rows, slot].set(cols, mode="drop")
    return sel[:, :capacity], jnp.max(count, initial=0)


def _dense_build(positions, cell, pbc, images, cutoff, capacity):
    """Dense builder: all (i, j, S) within ``cutoff`` (strictly), i = j only with S ≠ 0.

    Distances come from r² = |d|² + 2 d·t + |t|² with d the minimum-image
    Cartesian difference (N, N, 3) and t the image translations (I, 3), so no
    (N, N, I, 3) array is formed; shifts are gathered for the kept pairs only.
    """
    n = positions.shape[0]
    pbc_mask = jnp.asarray([1.0 if p else 0.0 for p in pbc], dtype=positions.dtype)
    full = complete_cell(cell, pbc)
    inv = jnp.linalg.inv(full)
    frac = positions @ inv
    dfrac = frac[None, :, :] - frac[:, None, :]  # (N, N, 3): j - i
    base = -jnp.round(dfrac) * pbc_mask  # minimum-image translation
    d = (dfrac + base) @ full  # (N, N, 3)
    imgs = jnp.asarray(images, dtype=positions.dtype)  # (I, 3)
    t = imgs @ full  # (I, 3)
    r2 = jnp.sum(d * d, -1)[:, :, None] + 2.0 * (d @ t.T) + jnp.sum(t * t, -1)[None, None, :]
    nimg = imgs.shape[0]
    zero_img = jnp.all(imgs == 0, axis=-1)  # (I,)
    self_pair = (jnp.arange(n)[:, None] == jnp.arange(n)[None, :])[:, :, None] & (
        jnp.all(base == 0, axis=-1)[:, :, None] & zero_img[None, None, :]
    )
    mask = ((r2 < cutoff * cutoff) & ~self_pair).reshape(n, -1)
    sel, maxc = _compact_flat(mask, capacity)
    ok = sel >= 0
    flat = jnp.where(ok, sel, 0)
    j = flat // nimg
    k = flat % nimg
    rows = jnp.arange(n)[:, None]
    shift = base[rows, j] + imgs[k]
    idx = jnp.where(ok, j, n).astype(jnp.int32)
    shifts = jnp.where(ok[..., None], jnp.round(shift), 0).astype(jnp.int32)
    return idx, shifts, maxc


def _cell_candidates(positions, cell, pbc, grid, bin_capacity, cutoff):
    """Linked-cell candidates for large periodic cells (every width ≥ 3 bins).

    Atoms are binned on wrapped fractional coordinates into ``grid`` bins;
    each atom checks the 27 surrounding bins. Returns mask/cand_j/cand_s like
    the dense builder plus a bin-overflow flag.
    """
    n = positions.shape[0]
    full = complete_cell(cell, pbc)
    inv = jnp.linalg.inv(full)
    frac = positions @ inv
    wrapped = frac - jnp.floor(frac)
    grid_arr = jnp.asarray(grid)
    b3 = jnp.clip(jnp.floor(wrapped * grid_arr).astype(jnp.int32), 0, grid_arr - 1)
    gx, gy, gz = grid
    nbins = gx * gy * gz
    bid = (b3[:, 0] * gy + b3[:, 1]) * gz + b3[:, 2]
    order = jnp.argsort(bid)
    sorted_bid = bid[order]
    start = jnp.searchsorted(sorted_bid, jnp.arange(nbins), side="left")
    counts = jnp.searchsorted(sorted_bid, jnp.arange(nbins), side="right") - start
    bin_overflow = jnp.max(counts) > bin_capacity
    slot = jnp.arange(bin_capacity)
    bins = jnp.where(
        slot[None, :] < counts[:, None],
        order[jnp.clip(start[:, None] + slot[None, :], 0, n - 1)],
        n,
    )  # (nbins, cap)
    offs = np.stack(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1], indexing="ij"), -1).reshape(-1, 3)
    nb3 = b3[:, None, :] + jnp.asarray(offs)[None]  # (N, 27, 3)
    nb3w = jnp.mod(nb3, grid_arr)
    nbid = (nb3w[..., 0] * gy + nb3w[..., 1]) * gz + nb3w[..., 2]
    cand_j = bins[nbid].reshape(n, -1)  # (N, 27*cap)
    valid = cand_j < n
    cj = jnp.where(valid, cand_j, 0)
    # minimum-image Cartesian differences (every periodic width ≥ 3 bins ≥ 2 rc)
    dfrac = frac[cj] - frac[:, None, :]
    d = (dfrac - jnp.round(dfrac)) @ full
    r2 = jnp.sum(d * d, axis=-1)
    mask = valid & (r2 < cutoff * cutoff) & (cj != jnp.arange(n)[:, None])
    return mask, cand_j, dfrac, bin_overflow


def _cell_build(positions, cell, pbc, grid, bin_capacity, cutoff, capacity):
    n = positions.shape[0]
    mask, cand_j, dfrac, bin_overflow = _cell_candidates(positions, cell, pbc, grid, bin_capacity, cutoff)
    sel, maxc = _compact_flat(mask, capacity)
    ok = sel >= 0
    k = jnp.where(ok, sel, 0)
    j = jnp.take_along_axis(cand_j, k, axis=1)
    df = jnp.take_along_axis(dfrac, k[..., None], axis=1)
    idx = jnp.where(ok, j, n).astype(jnp.int32)
    shifts = jnp.where(ok[..., None], -jnp.round(df), 0).astype(jnp.int32)
    return idx, shifts, maxc, bin_overflow


@dataclass(frozen=True)
class NeighborListFns:
    """``allocate``/``update`` pair for one system size and capacity.

    Attributes: ``cutoff`` (Å, the model cutoff), ``skin`` (Å), ``capacity``
    (max neighbours per atom, static), ``pbc`` (static tuple), ``images``
    (static lattice translations for the dense builder), ``method``.
    """

    cutoff: float
    skin: float
    capacity: int
    pbc: tuple
    images: tuple
    method: str
    grid: tuple = (1, 1, 1)
    bin_capacity: int = 0
    axis_name: str | None = None  # vmap axis of replicas: rebuild all when any needs it

    def for_replicas(self, axis_name: str = "replica") -> "NeighborListFns":
        """The same list for use under ``jax.vmap(..., axis_name=axis_name)``.

        Under ``vmap`` a per-replica ``lax.cond`` turns into a select that
        rebuilds every step; with an axis name the rebuild decision is reduced
        over the replicas (``psum``) so the cond stays a real branch.
        """
        return replace(self, axis_name=axis_name)

    @property
    def list_cutoff(self) -> float:
        return self.cutoff + self.skin

    def build(self, positions, cell) -> NeighborList:
        """Jit-compatible rebuild into the static shapes."""
        positions = jnp.asarray(positions)
        cell = jnp.asarray(cell, dtype=positions.dtype)
        extra_overflow = jnp.asarray(False)
        if self.method == "dense":
            idx, shifts, maxc = _dense_build(
                positions, cell, self.pbc, np.asarray(self.images), self.list_cutoff, self.capacity
            )
        else:
            idx, shifts, maxc, extra_overflow = _cell_build(
                positions, cell, self.pbc, self.grid, self.bin_capacity, self.list_cutoff, self.capacity
            )
        overflow = (maxc > self.capacity) | extra_overflow | self._geometry_overflow(cell)
        return NeighborList(idx, shifts, positions, cell, overflow, maxc)

    def _geometry_overflow(self, cell):
        """True when the (deformed) cell needs more images / bins than allocated."""
        full = complete_cell(cell, self.pbc)
        vol = jnp.abs(jnp.linalg.det(full))
        flags = []
        for a in range(3):
            if not self.pbc[a]:
                continue
            d = vol / jnp.linalg.norm(jnp.cross(full[(a + 1) % 3], full[(a + 2) % 3]))
            if self.method == "dense":
                n_alloc = max(abs(int(s[a])) for s in self.images)
                flags.append(jnp.floor(self.list_cutoff / d + 0.5) > n_alloc)
            else:
                flags.append(d / self.grid[a] < self.list_cutoff)
        return jnp.any(jnp.asarray(flags)) if flags else jnp.asarray(False)

    def update(self, positions, cell, nbrs: NeighborList) -> NeighborList:
        """Rebuild only when some atom moved more than skin/2 (jit-compatible).

        The cell change is included: displacements are measured in
        fractional coordinates mapped through the current cell.
        """
        positions = jnp.asarray(positions)
        cell = jnp.asarray(cell, dtype=positions.dtype)
        if self.skin <= 0:
            return self.build(positions, cell)
        full_new = complete_cell(cell, self.pbc)
        full_old = complete_cell(nbrs.reference_cell, self.pbc)
        # positions of the reference frame carried into the current cell
        ref_now = nbrs.reference_positions @ jnp.linalg.inv(full_old) @ full_new
        disp = jnp.sqrt(jnp.max(jnp.sum((positions - ref_now) ** 2, axis=-1)))
        # a cell deformation changes pair distances by at most |ΔH| r
        strain = jnp.linalg.norm(jnp.linalg.inv(full_old) @ full_new - jnp.eye(3), ord=2)
        need = (2.0 * disp + strain * self.list_cutoff) > self.skin
        if self.axis_name is not None:
            need = jax.lax.psum(need.astype(jnp.int32), self.axis_name) > 0
        return jax.lax.cond(need, lambda: self.build(positions, cell), lambda: nbrs)

    def allocate(self, positions, cell) -> NeighborList:
        nbrs = jax.jit(self.build)(positions, cell)
        if bool(nbrs.did_overflow):
            raise NeighborListOverflow(
                "neighbour list overflow right after allocation (internal error)"
            )
        return nbrs


def neighbor_list(
    positions,
    cell,
    pbc,
    cutoff: float,
    skin: float = 0.0,
    capacity_multiplier: float = 1.25,
    method: str | None = None,
    min_capacity: int = 8,
) -> tuple[NeighborListFns, NeighborList]:
    """Allocate a neighbour list for ``positions`` (N, 3) in ``cell`` (3, 3).

    Returns ``(fns, nbrs)``. The capacity is ``capacity_multiplier`` × the
    largest neighbour count found now (so NPT compression or diffusion has
    room); the image set of the dense builder allows the cell to shrink by
    about ``skin`` before an overflow is flagged.
    """
    positions = np.asarray(positions, dtype=float)
    cell = np.asarray(cell, dtype=float)
    pbc = tuple(bool(p) for p in np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)))
    n = len(positions)
    if n == 0:
        raise ConfigurationError("cannot build a neighbour list for zero atoms")
    for a in range(3):
        if pbc[a] and np.linalg.norm(cell[a]) == 0.0:
            raise ConfigurationError(f"periodic direction {a} has a zero lattice vector")
    rc = cutoff + skin
    if method is None:
        method = "dense"
        if all(pbc) and n > 2000:
            full = np.asarray(complete_cell(cell, pbc))
            vol = abs(np.linalg.det(full))
            widths = [vol / np.linalg.norm(np.cross(full[(a + 1) % 3], full[(a + 2) % 3])) for a in range(3)]
            if min(widths) >= 3.0 * rc * 1.05:
                method = "cell"
    grid = (1, 1, 1)
    bin_cap = 0
    images = ()
    if method == "dense":
        # margin: allow ~5 % shrink of the cell before more images are needed
        counts = image_counts(cell, pbc, rc * 1.05)
        images = tuple(tuple(int(v) for v in s) for s in _images(counts))
    elif method == "cell":
        full = np.asarray(complete_cell(cell, pbc))
        vol = abs(np.linalg.det(full))
        widths = [vol / np.linalg.norm(np.cross(full[(a + 1) % 3], full[(a + 2) % 3])) for a in range(3)]
        grid = tuple(int(w // (rc * 1.05)) for w in widths)
        if min(grid) < 3:
            raise ConfigurationError(
                "cell-list neighbour search needs every periodic width ≥ 3 × (cutoff + skin); "
                "use method='dense'"
            )
        frac = positions @ np.linalg.inv(full)
        b3 = np.floor((frac - np.floor(frac)) * np.asarray(grid)).astype(int)
        b3 = np.clip(b3, 0, np.asarray(grid) - 1)
        bid = (b3[:, 0] * grid[1] + b3[:, 1]) * grid[2] + b3[:, 2]
        bin_cap = int(np.ceil(np.bincount(bid, minlength=int(np.prod(grid))).max() * 1.25)) + 2
    else:
        raise ValueError(f"unknown neighbour-list method {method!r} (use 'dense' or 'cell')")
    idx, shifts, maxc = host_neighbors(positions, cell, pbc, rc)
    # rounded up to a multiple of 8: restarts and re-allocations with a few more neighbours reuse compiled blocks
    capacity = max(min_capacity, 8 * int(math.ceil(maxc * capacity_multiplier / 8)))
    fns = NeighborListFns(cutoff, skin, capacity, pbc, images, method, grid, bin_cap)
    nbrs = pad_neighbors(idx, shifts, capacity, positions, cell)
    return fns, nbrs


def _complete_cell_np(cell, pbc) -> np.ndarray:
    return np.asarray(complete_cell(jnp.asarray(cell), tuple(bool(p) for p in pbc)))


def _kdtree_pairs(positions, lengths, cutoff: float):
    """Pairs (i, j, S) with 0 < |x_j + S·L − x_i| < cutoff of an orthorhombic,
    fully periodic box with every length > 2 cutoff (one image per pair):
    scipy's periodic cKDTree, O(pairs) memory (ASE's builder needs ~30 GB for
    10⁶ atoms)."""
    tree = cKDTree(np.mod(positions, lengths), boxsize=lengths)
    p = tree.query_pairs(cutoff, output_type="ndarray")
    i = np.concatenate([p[:, 0], p[:, 1]])
    j = np.concatenate([p[:, 1], p[:, 0]])
    del p
    S = -np.rint((positions[j] - positions[i]) / lengths).astype(np.int32)
    d = positions[j] + S * lengths - positions[i]
    r2 = np.einsum("pc,pc->p", d, d)
    keep = (r2 < cutoff * cutoff) & (r2 > 0)
    i, j, S = i[keep], j[keep], S[keep]
    order = np.lexsort((j, i))
    return i[order], j[order], S[order]


def host_neighbors(positions, cell, pbc, cutoff: float, dense_limit: int = 3_000_000, kdtree: bool = True):
    """Neighbour list on the host, compacted: every pair 0 < r < cutoff, all images.

    Small systems (N² × images ≤ ``dense_limit``) use a vectorised numpy
    version of the dense builder; larger ones scipy's periodic k-d tree when
    the cell is orthorhombic, fully periodic and wider than 2 × cutoff
    (``kdtree``), otherwise ASE's ``primitive_neighbor_list``. Returns
    ``idx`` (N, Mmax) int32 padded with N, ``shifts`` (N, Mmax, 3) int32
    lattice translations, and Mmax.
    """
    positions = np.asarray(positions, dtype=float)
    n = len(positions)
    pbc = np.asarray(pbc, dtype=bool)
    cell = np.asarray(cell, dtype=float)
    full = _complete_cell_np(cell, pbc)
    images = _images(image_counts(cell, pbc, cutoff))
    lengths = np.diag(full)
    dense = n * n * len(images) <= dense_limit
    if not dense and kdtree and pbc.all() and np.allclose(full, np.diag(lengths)) and np.all(lengths > 2 * cutoff):
        i, j, S = _kdtree_pairs(positions, lengths, cutoff)
    elif dense:
        frac = positions @ np.linalg.inv(full)
        dfrac = frac[None, :, :] - frac[:, None, :]
        base = -np.round(dfrac) * pbc
        shift = base[:, :, None, :] + images[None, None]  # (N, N, I, 3)
        d = (dfrac[:, :, None, :] + shift) @ full
        r2 = np.einsum("ijkc,ijkc->ijk", d, d)
        mask = r2 < cutoff * cutoff
        ii = np.arange(n)
        mask[ii, ii] &= np.any(shift[ii, ii] != 0, axis=-1)
        i, j, k = np.nonzero(mask)
        S = np.rint(shift[i, j, k]).astype(np.int32)
    else:
        ase_cell = full.copy()
        if not pbc.all():
            # ASE bins along open directions too: give it a box spanning the atoms
            ext = np.ptp(positions @ np.linalg.inv(full), axis=0) + 1.0
            for a in range(3):
                if not pbc[a]:
                    ase_cell[a] = full[a] * max(ext[a], cutoff)
        i, j, S = primitive_neighbor_list("ijS", pbc, ase_cell, positions, cutoff, self_interaction=False)
        order = np.lexsort((j, i))
        i, j, S = i[order], j[order], S[order]
    counts = np.bincount(i, minlength=n)
    maxc = int(counts.max()) if n else 0
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(i)) - start[i]
    idx = np.full((n, max(maxc, 1)), n, dtype=np.int32)
    sh = np.zeros((n, max(maxc, 1), 3), dtype=np.int32)
    idx[i, slot] = j
    sh[i, slot] = S
    return idx, sh, maxc


def pad_neighbors(idx, shifts, capacity: int, positions, cell) -> NeighborList:
    """Wrap host arrays into a :class:`NeighborList` of the given capacity."""
    n, m = idx.shape
    if m > capacity:
        raise NeighborListOverflow(f"{m} neighbours exceed capacity {capacity}")
    I = np.full((n, capacity), n, dtype=np.int32)
    I[:, :m] = idx
    S = np.zeros((n, capacity, 3), dtype=np.int32)
    S[:, :m] = shifts
    return NeighborList(
        jnp.asarray(I),
        jnp.asarray(S),
        jnp.asarray(positions),
        jnp.asarray(cell),
        jnp.asarray(False),
        jnp.asarray(int((idx < n).sum(1).max()) if n else 0, dtype=jnp.int32),
    )


def check_overflow(nbrs: NeighborList) -> None:
    """Raise :class:`NeighborListOverflow` (outside jit) if the list overflowed."""
    if bool(nbrs.did_overflow):
        raise NeighborListOverflow(
            f"neighbour list overflow (an atom has {int(nbrs.max_count)} neighbours, capacity "
            f"{nbrs.idx.shape[1]}); re-allocate with neighbor_list(...)"
        )


def pair_vectors(positions, cell, nbrs_idx, nbrs_shifts):
    """Displacements r_ij = x_j + S·cell − x_i, shape (N, M, 3), and the pair mask.

    Padded slots (idx == N) get r = 0 and mask False.
    """
    n = positions.shape[0]
    valid = nbrs_idx < n
    j = jnp.where(valid, nbrs_idx, 0)
    r = positions[j] + nbrs_shifts.astype(positions.dtype) @ cell - positions[:, None, :]
    return jnp.where(valid[..., None], r, 0.0), valid


NeighborFn = Callable[..., NeighborList]


def pair_distances(positions, cell, idx, shifts) -> np.ndarray:
    """Host-side pair distances (N, M) in Å for a padded list; inf on padding."""
    positions = np.asarray(positions, dtype=float)
    idx = np.asarray(idx)
    valid = idx < len(positions)
    d = positions[np.where(valid, idx, 0)] + np.asarray(shifts) @ np.asarray(cell, dtype=float) - positions[:, None, :]
    return np.where(valid, np.sqrt((d * d).sum(-1)), np.inf)
