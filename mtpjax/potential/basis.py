"""Generator of the moment-tensor basis of MTP (MLIP-compatible), for any level 2..28.

Background
----------
Moment Tensor Potentials (A. V. Shapeev, *Multiscale Model. Simul.* **14**, 1153 (2016);
K. Gubaev, E. V. Podryabinkin, G. L. W. Hart, A. V. Shapeev, *Comput. Mater. Sci.* **156**,
148 (2019)) describe the neighbourhood of an atom by the *basic moment tensors*

    M_{mu,nu} = sum_j f_mu(|r_ij|) r_ij^(x)nu / |r_ij|^nu        (symmetric, rank nu)

and build scalar basis functions as full contractions of products of such tensors.  The level
of a basic tensor is ``lev(M_{mu,nu}) = 2 + 4 mu + nu`` and the level of a contraction is the
sum of the levels of its factors (Gubaev et al. 2019).  A basis "of level L" contains every
contraction of level <= L.

A scalar contraction of ``p`` basic tensors is a loopless multigraph on ``p`` nodes: node ``a``
carries the label ``(mu_a, nu_a)``, an edge of multiplicity ``e_ab`` contracts ``e_ab`` indices
of tensor ``a`` with ``e_ab`` indices of tensor ``b`` and the degree of a node equals its rank
``nu_a`` (self-contractions are excluded because a trace of ``r^(x)nu`` only lowers the rank:
it gives a moment that is already in the set).  Two contractions that differ by a
label-preserving relabelling of the nodes are the same function (the tensors are symmetric),
so the basis functions are the isomorphism classes of such graphs.

The rule used by MLIP's level templates
---------------------------------------
The templates shipped with MLIP (``MTP_templates/LL.almtp`` of MLIP-3, identical bases in
MLIP-2's ``untrained_mtps``) are data; the program that wrote them is not part of MLIP.  By
comparing with all templates 02..28 we found that each of them contains exactly

* every isomorphism class of loopless multigraphs with 1..4 nodes,
* whose nodes are basic tensors with ``mu <= 5`` and ``nu <= 10`` (these two caps only act at
  levels 26 and 28, e.g. ``M_{6,0}`` (level 26) and ``M_{0,11} . M_{0,11}`` (level 26) are
  absent: without them there would be 1466 and 2455 functions instead of 1464 and 2445; hence
  ``radial_funcs_count`` = number of ``mu`` used = ``min((L - 2) // 4 + 1, 6)``),
* whose total level is ``<= L`` (only even levels occur automatically: a full contraction has
  an even total rank).

This gives 1, 2, 5, 9, 16, 29, 52, 92, 163, 288, 500, 864, 1464, 2445 functions for levels
2, 4, ..., 28.  ``tests/test_basis.py`` checks the sets function by function, both against the
templates and against a brute-force enumeration of the graphs evaluated directly as sums over
neighbour tuples (a basis function's canonical form = its values on random neighbourhoods with
random radial values per ``mu``).

The contraction program
-----------------------
The functions are evaluated by MLIP's "contraction program": slots ``M_k``; the first
``n_basic`` slots are the monomial components of the basic tensors (rows ``{mu, a, b, c}`` of
``alpha_index_basic``, ``x^a y^b z^c / r^nu``), and each row ``{i, j, m, k}`` of
``alpha_index_times`` executes ``M_k += m * M_i * M_j``.  Derived slots are the components of
intermediate tensors.  This module reproduces MLIP's program *exactly* -- the three tables are
identical, element by element, to those of every template 02..28 (same slots, same rows in the
same order, same mapping order; checked by the tests).  The rules, inferred from the template
data only (no MLIP code was used), are:

* **Decomposition of a graph** (how a function is computed): 2 nodes: one contraction.  3 nodes:
  the node with the smallest degree (first one on ties) is contracted last with the pair formed
  by the two others (``X * (Y * Z)``); equivalently the pair with the most contracted
  indices is formed first.  4 nodes: a minimum cut: if the best split into two pairs (smallest
  number of edges between the pairs, first of {01|23, 02|13, 03|12} on ties) cuts strictly fewer
  edges than the smallest node degree, the function is ``(u*v) * (s*t)``; otherwise the node
  ``W`` of smallest degree (first on ties) is contracted last with the 3-node rule applied to
  the rest: ``W * (X * (Y * Z))``.  In both cases the top-level contraction, hence the rank of
  the largest intermediate tensors, is as small as possible.  Node indices refer to the
  canonical node order (labels sorted by ``(mu, nu)``, ties broken by the lexicographically
  smallest edge list).
* **Intermediate tensors** are stored by "index groups": each group is the set of free indices
  belonging to one basic tensor and is symmetric, so one component per monomial.  The
  components of a tensor are the products of the monomials of its groups (first group
  outermost, monomials with the x power descending, then the y power descending); the groups
  are ordered like their basic tensors in the key-minimising node order of the open graph (see
  *Orders*; ties resolved in the order X, Y, Z).  When a
  tensor is the contraction of two identical tensors (``M_{mu,nu} *c* M_{mu,nu}``) it is
  symmetric under exchange of the two groups and only unordered pairs of monomials are stored;
  the same holds for ``X * (that)`` when ``X`` contracts the same number of indices with both
  groups.  Identical intermediate tensors are shared between basis functions.
* **Rows** of a component: sum over all values of the contracted indices, grouped by the pair of
  source slots (``i <= j``), ``m`` = number of index assignments giving that pair; rows sorted by
  ``(i, j)``.
* **Orders**: a contraction graph (scalar or intermediate with free indices) gets the key
  ``(p, sorted mu's, min over mu-sorted node orders of (nu_a, e_ab, e_ac, .., nu_b, e_bc, ..))``.
  Basis functions (``alpha_moment_mapping``) are in key order.  Derived slots are ordered by
  tree height (pairs; then ``X*(Y*Z)`` and ``(u*v)*(s*t)``; then ``W*(X*(Y*Z))``) and then by key.

Only numpy is used here.
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from math import factorial

import numpy as np

__all__ = [
    "MomentBasis",
    "generate_basis",
    "moment_level",
    "evaluate_moments",
    "MAX_LEVEL",
    "MAX_FACTORS",
    "MAX_MU",
    "MAX_NU",
]

#: Highest level supported (largest MLIP template).
MAX_LEVEL = 28
#: At most this many basic tensors per basis function (MLIP templates).
MAX_FACTORS = 4
#: Caps on the basic tensors found in MLIP's templates (matter only for levels 26 and 28).
MAX_MU = 5
MAX_NU = 10


def moment_level(mu: int, nu: int) -> int:
    """Level of the basic moment tensor ``M_{mu,nu}`` (Gubaev et al. 2019): ``2 + 4 mu + nu``."""
    return 2 + 4 * mu + nu


@dataclass(frozen=True, eq=False)
class MomentBasis:
    """The three MLIP tables defining the moment-tensor basis of one level.

    Attributes
    ----------
    level:
        Level ``L`` of the basis.
    radial_funcs_count:
        Number ``K`` of radial functions ``f_mu`` (``mu = 0..K-1``).
    alpha_index_basic:
        ``(n_basic, 4)`` rows ``{mu, a, b, c}``: slot ``k`` is
        ``sum_j f_mu(r_j) x_j^a y_j^b z_j^c / r_j^(a+b+c)``.
    alpha_index_times:
        ``(n_times, 4)`` rows ``{i, j, m, k}``, executed in order: ``M_k += m * M_i * M_j``.
    alpha_moment_mapping:
        ``(S,)`` slot indices of the scalar basis functions ``B_alpha = M_{mapping[alpha]}``.
    alpha_moments_count:
        Total number of slots (basic + derived).
    """

    level: int
    radial_funcs_count: int
    alpha_index_basic: np.ndarray
    alpha_index_times: np.ndarray
    alpha_moment_mapping: np.ndarray
    alpha_moments_count: int

    @property
    def alpha_index_basic_count(self) -> int:
        return int(self.alpha_index_basic.shape[0])

    @property
    def alpha_index_times_count(self) -> int:
        return int(self.alpha_index_times.shape[0])

    @property
    def alpha_scalar_moments(self) -> int:
        """Number ``S`` of basis functions (without the implicit constant)."""
        return int(self.alpha_moment_mapping.shape[0])


# ----------------------------------------------------------------------------------------------
# small combinatorial helpers
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _monomials(d: int) -> tuple[tuple[int, int, int], ...]:
    """Exponents ``(a, b, c)`` with ``a+b+c = d``; x power descending, then y power descending."""
    return tuple((a, b, d - a - b) for a in range(d, -1, -1) for b in range(d - a, -1, -1))


@functools.lru_cache(maxsize=None)
def _monomial_index(d: int) -> dict:
    return {m: i for i, m in enumerate(_monomials(d))}


@functools.lru_cache(maxsize=None)
def _weighted_monomials(d: int) -> tuple[tuple[tuple[int, int, int], int], ...]:
    """Monomials of degree ``d`` with the number of index tuples giving each (multinomial)."""
    return tuple(
        (m, factorial(d) // (factorial(m[0]) * factorial(m[1]) * factorial(m[2])))
        for m in _monomials(d)
    )


def _add(m1, m2):
    return (m1[0] + m2[0], m1[1] + m2[1], m1[2] + m2[2])


_PAIRS = {p: tuple(itertools.combinations(range(p), 2)) for p in range(1, MAX_FACTORS + 1)}
_SPLITS = (((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2)))


# ----------------------------------------------------------------------------------------------
# contraction graphs
# ----------------------------------------------------------------------------------------------
class _Graph:
    """A scalar contraction: sorted node labels ``(mu, nu)`` and edge multiplicities."""

    __slots__ = ("labels", "edges", "e")

    def __init__(self, labels, edges):
        self.labels = labels  # tuple of (mu, nu), sorted
        self.edges = edges  # tuple over _PAIRS[p]
        e = {}
        for (a, b), m in zip(_PAIRS[len(labels)], edges):
            e[(a, b)] = m
            e[(b, a)] = m
        self.e = e

    def deg(self, i, nodes):
        return sum(self.e[(i, j)] for j in nodes if j != i)


def _canonical_edges(labels, edges):
    """Lexicographically smallest edge tuple over label-preserving node permutations."""
    p = len(labels)
    pairs = _PAIRS[p]
    emap = {}
    for (a, b), m in zip(pairs, edges):
        emap[(a, b)] = m
        emap[(b, a)] = m
    best = None
    for perm in itertools.permutations(range(p)):
        if any(labels[perm[i]] != labels[i] for i in range(p)):
            continue
        cand = tuple(emap[(perm[a], perm[b])] for a, b in pairs)
        if best is None or cand < best:
            best = cand
    return best


def _multigraphs(labels):
    """All loopless multigraphs with degree sequence ``nu`` of ``labels``, up to isomorphism."""
    p = len(labels)
    pairs = _PAIRS[p]
    # last pair index touching each node (for pruning)
    last = [max((k for k, pq in enumerate(pairs) if v in pq), default=-1) for v in range(p)]
    found = set()

    def rec(k, rem, cur):
        if k == len(pairs):
            if not any(rem):
                found.add(_canonical_edges(labels, cur))
            return
        a, b = pairs[k]
        for m in range(min(rem[a], rem[b]) + 1):
            rem2 = list(rem)
            rem2[a] -= m
            rem2[b] -= m
            if (last[a] == k and rem2[a]) or (last[b] == k and rem2[b]):
                continue
            rec(k + 1, rem2, cur + (m,))

    if p == 1:
        return [()] if labels[0][1] == 0 else []
    rec(0, [nu for _, nu in labels], ())
    return sorted(found)


def _scalar_graphs(level):
    types = [
        (mu, nu)
        for mu in range(MAX_MU + 1)
        for nu in range(MAX_NU + 1)
        if moment_level(mu, nu) <= level
    ]
    out = []
    for p in range(1, MAX_FACTORS + 1):
        for labels in itertools.combinations_with_replacement(types, p):
            if sum(moment_level(*t) for t in labels) > level:
                continue
            if sum(nu for _, nu in labels) % 2:
                continue
            for edges in _multigraphs(labels):
                out.append(_Graph(labels, edges))
    return out


def _order_key(graph, nodes, return_perm=False):
    """Ordering key of the (open) contraction graph induced on ``nodes``.

    ``(p, sorted mu's, min over node orders with non-decreasing mu of
    (nu_a, e_ab, e_ac, ..., nu_b, e_bc, ..., nu_last))`` where ``nu`` is the full rank of the
    basic tensor (free indices included).  With ``return_perm`` also the first minimising node
    order (permutations are tried in ``itertools.permutations(nodes)`` order).
    """
    labels = graph.labels
    e = graph.e
    mus = tuple(sorted(labels[i][0] for i in nodes))
    best = None
    best_perm = None
    for perm in itertools.permutations(nodes):
        if tuple(labels[i][0] for i in perm) != mus:
            continue
        key = []
        for a in range(len(perm)):
            key.append(labels[perm[a]][1])
            for b in range(a + 1, len(perm)):
                key.append(e[(perm[a], perm[b])])
        key = tuple(key)
        if best is None or key < best:
            best = key
            best_perm = perm
    if return_perm:
        return (len(nodes), mus, best), best_perm
    return (len(nodes), mus, best)


# ----------------------------------------------------------------------------------------------
# tensors and the contraction program
# ----------------------------------------------------------------------------------------------
class _Tensor:
    """Stored components of an (intermediate) tensor.

    ``groups``: degrees of its symmetric index groups (only groups with free indices).
    ``sym``: ``None`` or a pair of group positions that may be exchanged (identical factors).
    """

    __slots__ = ("groups", "sym", "slot_of", "first_slot")

    def __init__(self, groups, sym=None):
        self.groups = tuple(groups)
        self.sym = sym
        self.slot_of = {}
        self.first_slot = None

    def components(self):
        comps = itertools.product(*[_monomials(d) for d in self.groups])
        if self.sym is None:
            return list(comps)
        g1, g2 = self.sym
        idx = _monomial_index(self.groups[g1])
        return [c for c in comps if idx[c[g1]] <= idx[c[g2]]]

    def lookup(self, comp):
        if self.sym is not None:
            g1, g2 = self.sym
            idx = _monomial_index(self.groups[g1])
            if idx[comp[g1]] > idx[comp[g2]]:
                comp = list(comp)
                comp[g1], comp[g2] = comp[g2], comp[g1]
                comp = tuple(comp)
        return self.slot_of[comp]


class _Spec:
    """A derived tensor ``left *n* right`` still to be laid out in the program.

    ``left``/``right`` are basic :class:`_Tensor` objects or other :class:`_Spec` objects;
    ``n[g][h]`` = number of indices of group ``g`` of ``left`` contracted with group ``h`` of
    ``right``; ``groups``/``sym`` describe the result (see :class:`_Tensor`); ``sources[g] =
    (side, group)`` names the group of ``left`` (side 0) or ``right`` (side 1) whose remaining
    free indices form result group ``g`` (``None``: left's groups first, then right's).
    ``stage`` is the tree height, ``okey`` the ordering key of the contraction graph.
    """

    __slots__ = ("skey", "stage", "okey", "left", "right", "n", "groups", "sym", "sources", "tensor")

    def __init__(self, skey, stage, okey, left, right, n, groups, sym=None, sources=None):
        self.skey = skey
        self.stage = stage
        self.okey = okey
        self.left = left
        self.right = right
        self.n = n
        self.groups = tuple(groups)
        self.sym = sym
        self.sources = sources
        self.tensor = None


class _Builder:
    """Builds the contraction program of one level (see the module docstring for the rules)."""

    def __init__(self, level):
        self.level = level
        self.graphs = _scalar_graphs(level)
        used = sorted({t for g in self.graphs for t in g.labels})
        self.basic_rows = []
        self.basic = {}
        for mu, nu in used:
            t = _Tensor([nu] if nu > 0 else [])
            t.first_slot = len(self.basic_rows)
            for m in _monomials(nu):
                t.slot_of[(m,) if nu > 0 else ()] = len(self.basic_rows)
                self.basic_rows.append((mu,) + m)
            self.basic[(mu, nu)] = t
        self.radial_funcs_count = 1 + max(mu for mu, _ in used)
        self.specs = {}

    # -- decomposition of the graphs into binary contractions (structure only) -----------------
    def _spec(self, skey, **kw):
        s = self.specs.get(skey)
        if s is None:
            s = _Spec(skey, **kw)
            self.specs[skey] = s
        return s

    def pair(self, g, y, z):
        """``M_y *c* M_z`` for graph nodes ``y < z`` (labels are sorted, so ``M_y <= M_z``).

        Returns the spec and the graph nodes owning its index groups (in group order).
        """
        ly, lz = g.labels[y], g.labels[z]
        c = g.e[(y, z)]
        ry, rz = ly[1] - c, lz[1] - c
        owners = tuple(o for o, r in ((y, ry), (z, rz)) if r > 0)
        groups = tuple(r for r in (ry, rz) if r > 0)
        # two copies of the same basic tensor: symmetric under exchange of the two groups
        sym = (0, 1) if (ly == lz and ry > 0) else None
        if ly[1] > 0 and lz[1] > 0:
            n = ((c,),)
        else:  # a scalar factor M_{mu,0}: nothing to contract
            n = ((),) if ly[1] > 0 else ()
        spec = self._spec(
            ("P", ly, c, lz), stage=1, okey=_order_key(g, (y, z)),
            left=self.basic[ly], right=self.basic[lz], n=n, groups=groups, sym=sym,
        )
        return spec, owners

    def triple(self, g, nodes):
        """``M_x * (M_y * M_z)`` on the 3 graph nodes ``nodes`` (3-node rule).

        Returns the spec and the graph nodes owning its index groups (in group order).
        """
        x = min(nodes, key=lambda i: (g.deg(i, nodes), i))
        y, z = (i for i in nodes if i != x)
        pspec, powners = self.pair(g, y, z)
        lx = g.labels[x]
        row = [g.e[(x, o)] for o in powners]
        if pspec.sym is not None and row[0] < row[1]:
            # the groups of a symmetric pair are interchangeable: canonical orientation
            row.reverse()
            powners = powners[::-1]
        rem_x = lx[1] - sum(row)
        rem_p = [g.labels[o][1] - g.e[(y, z)] - g.e[(x, o)] for o in powners]
        okey, perm = _order_key(g, (x, y, z), return_perm=True)
        # result groups are ordered like their nodes in the canonical order of the open graph
        cand = ([(x, rem_x, (0, 0))] if rem_x > 0 else []) + [
            (o, r, (1, gi)) for gi, (o, r) in enumerate(zip(powners, rem_p)) if r > 0
        ]
        cand.sort(key=lambda t: perm.index(t[0]))
        owners = tuple(t[0] for t in cand)
        sym = None
        if pspec.sym is not None and row[0] == row[1] and rem_p[0] > 0:
            # X contracts both groups of a symmetric pair alike: still symmetric
            sym = tuple(sorted((owners.index(powners[0]), owners.index(powners[1]))))
        spec = self._spec(
            ("T", lx, tuple(row), pspec.skey), stage=2, okey=okey,
            left=self.basic[lx], right=pspec, n=(tuple(row),) if lx[1] > 0 else (),
            groups=tuple(t[1] for t in cand), sym=sym, sources=tuple(t[2] for t in cand),
        )
        return spec, owners

    def scalar(self, g):
        """The spec (or basic tensor) computing the scalar contraction graph ``g``."""
        p = len(g.labels)
        if p == 1:
            return self.basic[g.labels[0]]
        if p == 2:
            return self.pair(g, 0, 1)[0]
        if p == 3:
            return self.triple(g, (0, 1, 2))[0]
        allnodes = (0, 1, 2, 3)
        degs = [g.deg(i, allnodes) for i in allnodes]
        best_cut, split = None, None
        for (u, v), (s, t) in _SPLITS:
            cut = g.e[(u, s)] + g.e[(u, t)] + g.e[(v, s)] + g.e[(v, t)]
            if best_cut is None or cut < best_cut:
                best_cut, split = cut, ((u, v), (s, t))
        okey = _order_key(g, allnodes)
        if best_cut < min(degs):  # (u*v) * (s*t)
            (u, v), (s, t) = split
            p1, o1 = self.pair(g, u, v)
            p2, o2 = self.pair(g, s, t)
            n = tuple(tuple(g.e[(a, b)] for b in o2) for a in o1)
            return self._spec(
                ("PP", p1.skey, p2.skey, n), stage=2, okey=okey, left=p1, right=p2, n=n,
                groups=(),
            )
        w = min(allnodes, key=lambda i: (degs[i], i))  # W * (X * (Y * Z))
        tspec, towners = self.triple(g, tuple(i for i in allnodes if i != w))
        lw = g.labels[w]
        n = (tuple(g.e[(w, o)] for o in towners),) if lw[1] > 0 else ()
        return self._spec(
            ("C", lw, n, tspec.skey), stage=3, okey=okey, left=self.basic[lw], right=tspec,
            n=n, groups=(),
        )

    # -- laying out the program ----------------------------------------------------------------
    def build(self):
        """Return ``(alpha_moments_count, times rows, mapping)``."""
        scal = [(_order_key(g, tuple(range(len(g.labels)))), self.scalar(g)) for g in self.graphs]
        scal.sort(key=lambda t: t[0])
        nslots = len(self.basic_rows)
        times = []
        for spec in sorted(self.specs.values(), key=lambda s: (s.stage, s.okey)):
            left = spec.left if isinstance(spec.left, _Tensor) else spec.left.tensor
            right = spec.right if isinstance(spec.right, _Tensor) else spec.right.tensor
            n = spec.n
            if isinstance(spec.left, _Spec) and left.first_slot > right.first_slot:
                # (u*v)*(s*t): the pair laid out first is the left factor
                left, right = right, left
                n = tuple(zip(*n))
            tensor = _Tensor(spec.groups, spec.sym)
            tensor.first_slot = nslots
            nslots = self._contract(tensor, left, right, n, spec.sources, nslots, times)
            spec.tensor = tensor
        mapping = [
            (s if isinstance(s, _Tensor) else s.tensor).slot_of[()] for _, s in scal
        ]
        return nslots, times, mapping

    @staticmethod
    def _contract(result, left, right, n, sources, nslots, times):
        """Append the rows computing every component of ``result = left *n* right``.

        For each stored component (one monomial per result group) the contracted indices run
        over all values; the rows are the distinct pairs of source slots ``(i <= j)`` with ``m``
        the number of index assignments giving the pair, sorted by ``(i, j)``.
        """
        ngl, ngr = len(left.groups), len(right.groups)
        rem_l = [left.groups[a] - sum(n[a]) for a in range(ngl)]
        rem_r = [right.groups[b] - sum(n[a][b] for a in range(ngl)) for b in range(ngr)]
        default = [(0, a) for a in range(ngl) if rem_l[a] > 0] + [
            (1, b) for b in range(ngr) if rem_r[b] > 0
        ]
        sources = default if sources is None else list(sources)
        assert sorted(sources) == default
        assert tuple((rem_l, rem_r)[side][gi] for side, gi in sources) == result.groups
        bundles = [(a, b, n[a][b]) for a in range(ngl) for b in range(ngr) if n[a][b] > 0]
        choices = [_weighted_monomials(d) for _, _, d in bundles]
        zero = (0, 0, 0)
        for comp in result.components():
            free = ([zero] * ngl, [zero] * ngr)
            for (side, gi), m in zip(sources, comp):
                free[side][gi] = m
            count = {}
            for combo in itertools.product(*choices):
                lx = list(free[0])
                rx = list(free[1])
                mult = 1
                for (a, b, _), (m, w) in zip(bundles, combo):
                    lx[a] = _add(lx[a], m)
                    rx[b] = _add(rx[b], m)
                    mult *= w
                i = left.lookup(tuple(lx))
                j = right.lookup(tuple(rx))
                if i > j:
                    i, j = j, i
                count[(i, j)] = count.get((i, j), 0) + mult
            result.slot_of[comp] = nslots
            for i, j in sorted(count):
                times.append((i, j, count[(i, j)], nslots))
            nslots += 1
        return nslots


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------
def generate_basis(level: int) -> MomentBasis:
    """Generate MLIP's moment-tensor basis of the given level (2, 4, ..., 28).

    The tables are identical to those of MLIP's level template ``LL.mtp``/``LL.almtp`` (see
    the module docstring for the rule).  Results are cached (``functools.lru_cache``); the
    returned arrays are read-only.  Raises :class:`ValueError` for odd levels, levels < 2 or
    > 28 and non-integers.
    """
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, (int, np.integer)):
        raise ValueError(
            f"MTP level must be an even integer between 2 and {MAX_LEVEL}, got {level!r}"
        )
    level = int(level)
    if level < 2 or level > MAX_LEVEL or level % 2:
        raise ValueError(
            f"MTP level must be an even integer between 2 and {MAX_LEVEL} "
            f"(the levels of MLIP's templates), got {level}"
        )
    return _generate_cached(level)


def _generate(level: int) -> MomentBasis:
    """Build the basis of a (validated) level, without caching."""
    b = _Builder(level)
    nslots, times, mapping = b.build()
    basic = np.asarray(b.basic_rows, dtype=np.int64).reshape(-1, 4)
    times_arr = np.asarray(times, dtype=np.int64).reshape(-1, 4)
    mapping_arr = np.asarray(mapping, dtype=np.int64)
    for a in (basic, times_arr, mapping_arr):
        a.setflags(write=False)
    return MomentBasis(
        level=level,
        radial_funcs_count=b.radial_funcs_count,
        alpha_index_basic=basic,
        alpha_index_times=times_arr,
        alpha_moment_mapping=mapping_arr,
        alpha_moments_count=nslots,
    )


_generate_cached = functools.lru_cache(maxsize=None)(_generate)


def evaluate_moments(basis: MomentBasis, radial, unit_vectors) -> np.ndarray:
    """Reference numpy evaluation of every slot of the contraction program.

    ``radial``: ``(..., K, n_neighbours)`` values ``f_mu(|r_j|)``; ``unit_vectors``:
    ``(..., n_neighbours, 3)`` unit vectors ``r_j / |r_j|`` (padding neighbours can be given
    zero radial values).  Returns ``(..., alpha_moments_count)``; the basis functions are
    ``out[..., basis.alpha_moment_mapping]``.  The rows of ``alpha_index_times`` are applied in
    waves of equal dependency depth (vectorised, same result as the sequential program).
    """
    radial = np.asarray(radial, dtype=float)
    u = np.asarray(unit_vectors, dtype=float)
    batch = np.broadcast_shapes(radial.shape[:-2], u.shape[:-2])
    bi = np.asarray(basis.alpha_index_basic)
    mono = (
        u[..., None, :, 0] ** bi[:, 1, None]
        * u[..., None, :, 1] ** bi[:, 2, None]
        * u[..., None, :, 2] ** bi[:, 3, None]
    )  # (..., n_basic, n)
    basic = np.sum(radial[..., bi[:, 0], :] * mono, axis=-1)  # (..., n_basic)
    out = np.zeros((basis.alpha_moments_count,) + batch)
    out[: bi.shape[0]] = np.moveaxis(np.broadcast_to(basic, batch + basic.shape[-1:]), -1, 0)
    times = np.asarray(basis.alpha_index_times).reshape(-1, 4)
    for rows in _waves(times, basis.alpha_moments_count):
        i, j, m, k = rows.T
        m = m.astype(float).reshape((-1,) + (1,) * len(batch))
        np.add.at(out, k, m * out[i] * out[j])
    return np.moveaxis(out, 0, -1)


def _waves(times: np.ndarray, nslots: int):
    """Split program rows into groups whose sources only depend on earlier groups."""
    depth = [0] * nslots
    row_depth = []
    for i, j, _, k in times.tolist():
        d = 1 + max(depth[i], depth[j])
        row_depth.append(d)
        if d > depth[k]:
            depth[k] = d
    # rows are executed in order and every slot is read only after its last write, so all
    # writes to a slot have a smaller depth than any row reading it
    row_depth = np.asarray(row_depth, dtype=np.int64)
    return [times[row_depth == d] for d in range(1, int(row_depth.max(initial=0)) + 1)]
