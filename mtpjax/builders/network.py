"""Random B–O network starting cells for borate glasses (e.g. Li3B11O18).

A random packing of single atoms leaves boron with one or two oxygens within
bonding distance (mean B–O coordination ≈ 1.5 within 2 Å for Li3B11O18), far
from the BO3/BO4 network of the glass, and a few picoseconds of MD at 1000 K
do not repair it (≈ 2.9, with BO2 left). Like the intact PS4 tetrahedra of
the Li3PS4 cells, this builder starts from the right local chemistry:

1. **topology**: a graph on the borons whose edges are bridging oxygens
   (B–O–B), the 2·n_O bridge ends spread evenly over the borons (3 or 4
   each for B11O18; n_B − 1 ≤ n_O ≤ 2 n_B); no boron bonded to itself or
   twice to the same boron. ``topology="local"`` (default): borons packed
   at random first, bridges between near borons (:func:`local_topology`);
   ``"random"``: any borons (configuration model with rejection,
   :func:`network_topology`);
2. **embedding**: borons and oxygens start at random in the periodic cell
   and relax by gradient descent on harmonic springs — B–O ``bond``, B–B
   across a bridge ``bb`` (B–O–B ≈ 137°), O–O on a common boron ``oo`` (the
   BO3 triangle) — plus soft repulsions between non-bonded atoms closer than
   ``repel`` (minimum-image distances, so every bond picks its own image);
3. Li (and any other free atoms) are packed at random around the network
   (the per-pair minimum distances of :func:`~mtpjax.builders.random_packing`).

With 18 O per 11 B every oxygen bridges: mean B–O coordination 36/11 ≈ 3.27
(the crystal's 8 BO3 + 3 BO4). Everything is drawn from
``np.random.default_rng(seed)``. Units: Å, g/cm³.

Pressure (32-atom Li3B11O18 at 1.854 g/cm³, GFN1-xTB): a random graph
wraps long bridges through the periodic boundaries and its embedding is
strongly compressed (15–18 GPa; a random packing of the same atoms: −27
GPa); in a picosecond NPT melt at 1000 K such cells open up to ~1.2 g/cm³,
an open network that then stays. Local networks, relaxed by xTB (atoms and
cell), settle at 1.77–1.80 g/cm³ at zero pressure with B–O coordination
3.18, as low in energy as those open networks (−87.38 eV/atom). Relax
(or at least minimise) the cells before hot NPT: the spring embedding is
not an energy minimum of any real potential.
"""
from __future__ import annotations

import numpy as np

from mtpjax.errors import ConfigurationError
from mtpjax.builders.amorphous import AMU_A3_TO_G_CM3, cell_for_density, random_packing
from ase import Atoms
from ase.data import atomic_numbers
from ase.neighborlist import neighbor_list

__all__ = ["borate_network", "local_topology", "network_topology", "roll_fewest_cut_bonds"]


def _degrees(n_b: int, n_o: int, rng):
    """Bridge ends per boron: 2·n_O spread as evenly as possible (n_B,) int;
    refuses counts that cannot make a connected network of BO3/BO4."""
    if n_b > 1 and n_o < n_b - 1:
        raise ConfigurationError(f"borate network: {n_b} B need at least {n_b - 1} O to be connected, got {n_o}")
    if n_o > 2 * n_b:
        raise ConfigurationError(f"borate network: too many oxygens ({n_o}) for {n_b} borons: every O bridges two "
                                 "B and no B gets more than 4")
    ends = 2 * n_o
    deg = np.full(n_b, ends // n_b)
    deg[rng.permutation(n_b)[: ends % n_b]] += 1
    return deg


def local_topology(xb, cell, n_o: int, rng, noise: float = 0.15, max_tries: int = 500):
    """Bridges (n_O, 2) int between *nearby* borons at positions ``xb``
    (n_B, 3) Å in ``cell`` (3, 3) Å (minimum image), or None if none found.

    Same degrees as :func:`network_topology` (3 or 4 per boron for
    B11O18), but the pairs are taken greedily in order of B–B distance
    (each distance multiplied by a random factor exp(noise·N(0, 1)) per
    try), so every bridge joins neighbours and the network's natural
    density is the cell's. A fully random graph wraps long bridges through
    the periodic boundaries and, embedded at the glass density, is strongly
    compressed (15–18 GPa by GFN1-xTB for 32-atom Li3B11O18)."""
    xb = np.asarray(xb, float)
    n_b = len(xb)
    deg = _degrees(n_b, int(n_o), rng)
    inv = np.linalg.inv(cell)
    iu, ju = np.triu_indices(n_b, 1)
    d = np.linalg.norm(_mic(xb[ju] - xb[iu], cell, inv), axis=1)
    for _ in range(int(max_tries)):
        order = np.argsort(d * np.exp(noise * rng.normal(size=d.shape)))
        left = deg.copy()
        e = []
        for k in order:
            i, j = iu[k], ju[k]
            if left[i] and left[j]:
                e.append((i, j))
                left[i] -= 1
                left[j] -= 1
        if len(e) == n_o:
            return np.asarray(e, int)
    return None


def network_topology(n_b: int, n_o: int, rng, max_tries: int = 2000):
    """Random bridges (n_O, 2) int: the two borons of each (bridging) oxygen.

    The 2·n_O bridge ends are spread as evenly as possible over the borons
    (3 or 4 each for B11O18); no self-bridges, no double bridges. Refused
    (ConfigurationError): fewer than n_B − 1 oxygens (not connected), more
    than 2·n_B (a boron would be more than 4-coordinated), or no such graph."""
    n_b, n_o = int(n_b), int(n_o)
    deg = _degrees(n_b, n_o, rng)
    for _ in range(max_tries):
        stubs = rng.permutation(np.repeat(np.arange(n_b), deg))
        e = np.sort(stubs.reshape(-1, 2), axis=1)
        if np.all(e[:, 0] != e[:, 1]) and len({tuple(x) for x in e}) == len(e):
            return e
    raise ConfigurationError(f"borate network: no random graph with boron degrees {deg.tolist()} "
                             "without self- or double bridges (a simple graph)")


def _mic(d, cell, inv):
    """Minimum-image copies of displacement vectors d (..., 3) Å."""
    f = d @ inv
    return (f - np.rint(f)) @ cell


def _energy_grad(x, cell, inv, springs, repel_pairs):
    si, sj, s0, sk = springs
    ri, rj, r0 = repel_pairs
    g = np.zeros_like(x)
    d = _mic(x[sj] - x[si], cell, inv)
    r = np.linalg.norm(d, axis=1) + 1e-12
    e = float(np.sum(sk * (r - s0) ** 2))
    c = (2 * sk * (r - s0) / r)[:, None] * d
    np.add.at(g, sj, c)
    np.add.at(g, si, -c)
    d = _mic(x[rj] - x[ri], cell, inv)
    r = np.linalg.norm(d, axis=1) + 1e-12
    over = np.clip(r0 - r, 0.0, None)
    e += float(np.sum(over ** 2))
    w = (-2 * over / r)[:, None] * d
    np.add.at(g, rj, w)
    np.add.at(g, ri, -w)
    return e, g


def _relax(x, cell, springs, repel_pairs, steps: int, lr: float, rng, noise: float = 0.25):
    """Gradient descent on Σ k (|r_ij| − r0)² (springs (i, j, r0, k)) plus
    Σ (d0 − r)² over repel_pairs (i, j, d0) closer than d0 (minimum image),
    with random kicks decaying linearly from ``noise`` Å to 0 over the
    first 70 % of the steps (annealing out of tangled starts). Returns
    (x, energy)."""
    inv = np.linalg.inv(cell)
    hot = int(0.7 * steps)
    for t in range(steps):
        _, g = _energy_grad(x, cell, inv, springs, repel_pairs)
        x = x - lr * np.clip(g, -5.0, 5.0)
        if t < hot:
            x = x + rng.normal(scale=noise * (1.0 - t / hot), size=x.shape)
    return x, _energy_grad(x, cell, inv, springs, repel_pairs)[0]


def _springs(bridges, n_b: int, n_o: int, sym, rep, bond: float, bb: float, oo: float):
    """Harmonic springs (i, j, r0, k) of a bridge list — B–O bonds, B···B
    across each bridge, O···O on each boron — and the repulsive pairs (i,
    j, d0) of every other network pair. Atoms: B 0..n_b−1, then the oxygen
    of bridge k at n_b + k."""
    o_b = [[] for _ in range(n_b)]  # oxygens of each boron
    si, sj, s0, sk = [], [], [], []
    for k, (p, q) in enumerate(bridges):
        o = n_b + k
        for bb_ in (p, q):
            si.append(bb_); sj.append(o); s0.append(bond); sk.append(1.0)
            o_b[bb_].append(o)
        si.append(p); sj.append(q); s0.append(bb); sk.append(0.3)
    for os_ in o_b:
        for u in range(len(os_)):
            for v in range(u + 1, len(os_)):
                si.append(os_[u]); sj.append(os_[v]); s0.append(oo if len(os_) <= 3 else 2.24); sk.append(0.3)
    springs = tuple(np.asarray(v) for v in (si, sj, s0, sk))
    n = n_b + n_o
    bonded = {(min(i, j), max(i, j)) for i, j in zip(si, sj)}
    ri, rj, r0 = [], [], []
    for i in range(n):
        for j in range(i + 1, n):
            if (i, j) not in bonded:
                ri.append(i); rj.append(j); r0.append(rep[tuple(sorted((sym[i], sym[j])))])
    return springs, (np.asarray(ri, int), np.asarray(rj, int), np.asarray(r0, float))


def borate_network(n_b: int, n_o: int, others=(), *, density_g_cm3=None, cell=None, a: float = 12.0,
                   b: float = 12.0, bond: float = 1.37, bb: float = 2.55, oo: float = 2.37,
                   repel=None, min_distances=None, seed: int = 0, steps: int = 3000, lr: float = 0.02,
                   restarts: int = 4, topology: str = "local"):
    """A random B–O network of ``n_b`` B and ``n_o`` O plus ``others``
    [(symbol, count)] packed around it, at ``density_g_cm3`` (cell a × b ×
    c) or in ``cell`` (3, 3). ``repel``: {(a, b): d} Å below which non-bonded
    network atoms repel (default B–B 2.45, O–O 2.3, B–O 2.3).

    Returns ``ase.Atoms`` (pbc; B first, then O, then the others) with
    ``arrays['unit_id']`` (every atom its own unit), ``info['seed']``,
    ``info['density_g_cm3']``, ``info['bo_bridging']`` and
    ``info['bo_bond_max_A']`` (the longest network B–O bond after the
    relaxation)."""
    n_b, n_o = int(n_b), int(n_o)
    if n_b < 1 or n_o < 0:
        raise ConfigurationError(f"need at least one B and no negative O count (got B {n_b}, O {n_o})")
    items = [("B", n_b), ("O", n_o)] + [(s, int(n)) for s, n in others]
    if (density_g_cm3 is None) == (cell is None):
        raise ConfigurationError("give exactly one of density_g_cm3 or cell")
    cell = cell_for_density(items, density_g_cm3, a, b) if cell is None else np.asarray(cell, float)
    if cell.shape == (3,):
        cell = np.diag(cell)
    rep = {("B", "B"): 2.45, ("O", "O"): 2.3, ("B", "O"): 2.3}
    rep.update({tuple(sorted(k)): v for k, v in (repel or {}).items()})
    if topology not in ("local", "random"):
        raise ConfigurationError(f"borate network: topology = {topology!r} (allowed: \"local\", \"random\")")
    rng = np.random.default_rng(seed)
    n = n_b + n_o
    sym = ["B"] * n_b + ["O"] * n_o
    inv = np.linalg.inv(cell)
    best = None
    for _ in range(int(restarts)):
        x0 = rng.random((n, 3)) @ cell
        bridges = None
        if topology == "local":
            xb = random_packing(cell, [("B", n_b)], {("B", "B"): rep[("B", "B")]},
                                seed=int(rng.integers(2**31))).positions
            bridges = local_topology(xb, cell, n_o, rng)
            if bridges is not None:  # oxygens half-way along their bridges
                x0[:n_b] = xb
                x0[n_b:] = xb[bridges[:, 0]] + 0.5 * _mic(xb[bridges[:, 1]] - xb[bridges[:, 0]], cell, inv) \
                    + rng.normal(scale=0.2, size=(n_o, 3))
        if bridges is None:
            bridges = network_topology(n_b, n_o, rng)
        springs, repel_pairs = _springs(bridges, n_b, n_o, sym, rep, bond, bb, oo)
        x, e = _relax(x0, cell, springs, repel_pairs, steps, lr, rng,
                      noise=0.25 if topology == "random" else 0.05)
        if best is None or e < best[1]:
            best = (x, e, springs, len(bridges))
    x, _, springs, nbr = best
    si, sj = springs[0], springs[1]
    x = x @ inv % 1.0 @ cell
    r = np.linalg.norm(_mic(x[sj] - x[si], cell, inv), axis=1)
    is_bo = np.array([sym[i] != sym[j] for i, j in zip(si, sj)])
    bo_max = float(r[is_bo].max()) if is_bo.any() else 0.0
    rest = [(s, int(k)) for s, k in others if int(k) > 0]
    if rest:
        md = {("B", "O"): 1.2, ("O", "O"): 2.0, ("B", "B"): 2.0}
        md.update(min_distances or {})
        at = random_packing(cell, rest, md, seed=int(rng.integers(2**31)), fixed=(x, sym))
    else:
        at = Atoms(sym, positions=x, cell=cell, pbc=True)
        at.arrays["unit_id"] = np.arange(len(at))
    at.info["seed"] = int(seed)
    at.info["density_g_cm3"] = float(at.get_masses().sum()) * AMU_A3_TO_G_CM3 / abs(np.linalg.det(cell))
    at.info["bo_bridging"] = int(nbr)
    at.info["bo_bond_max_A"] = bo_max
    return at


def roll_fewest_cut_bonds(atoms, pair=("B", "O"), r_bond: float = 2.0, n_roll: int = 64):
    """A copy of ``atoms`` translated along c (then wrapped) so that the c
    boundary cuts as few ``pair`` bonds (shorter than ``r_bond`` Å) as
    possible: the plane where a bulk network cell is best cut into a slab
    (e.g. before :func:`~mtpjax.builders.stack_interface`). ``info['cut_bonds']``
    says how many bonds the chosen plane still cuts."""
    at = atoms.copy()
    z = at.numbers
    za, zb = atomic_numbers[pair[0]], atomic_numbers[pair[1]]
    i, j, S = neighbor_list("ijS", at, r_bond)
    keep = (z[i] == za) & (z[j] == zb)
    i, j = i[keep], j[keep]
    fz = at.get_scaled_positions(wrap=True)[:, 2]
    zi, zj = fz[i], fz[j] + S[keep, 2]  # bond from zi to zj (unwrapped)
    lo, hi = np.minimum(zi, zj), np.maximum(zi, zj)
    offs = np.arange(n_roll) / n_roll
    # a plane at fractional height 1 − off (before the roll) cuts a bond when it lies between its ends (mod 1)
    cuts = []
    for off in offs:
        p = (1.0 - off) % 1.0
        cuts.append(int(np.sum(((lo < p) & (p < hi)) | ((lo < p + 1) & (p + 1 < hi)) | ((lo < p - 1) & (p - 1 < hi)))))
    best = int(np.argmin(cuts))
    f = at.get_scaled_positions(wrap=True)
    f[:, 2] = (f[:, 2] + offs[best]) % 1.0
    at.set_scaled_positions(f)
    at.info["cut_bonds"] = cuts[best]
    return at
