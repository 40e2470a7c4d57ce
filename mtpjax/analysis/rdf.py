"""Partial radial distribution functions and running coordination numbers.

For species a, b in a frame of volume V:

    g_ab(r) = V / (N_a (N_b − δ_ab)) · n_ab(r, r+dr) / (4π/3 [(r+dr)³ − r³])

where n_ab counts ordered (a, b) pairs, i ≠ j, over all periodic images; the
N_b − δ_ab normalisation makes an ideal gas give exactly g = 1 in
expectation.  g is averaged over frames (each frame with its own V, so NPT
is handled).  The running coordination number CN_ab(r) is the mean number of
b atoms within r of an a atom, counted directly (not integrated from g).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtpjax.errors import ConfigurationError
from mtpjax.analysis.geometry import pair_distances_frames
from mtpjax.analysis.trajectory import as_trajectory, species_indices

__all__ = ["RDFResult", "compute_rdf", "first_minimum", "parse_pair"]


@dataclass
class RDFResult:
    """r (nbins,) bin centres Å; edges (nbins+1,); g and cn: {"A-B": (nbins,)}
    with cn at the bin upper edges; n_frames averaged."""

    r: np.ndarray
    edges: np.ndarray
    g: dict
    cn: dict
    n_frames: int

    def to_dict(self) -> dict:
        out = {"r_A": self.r.tolist(), "n_frames": self.n_frames, "pairs": {}}
        for k in self.g:
            rm, gm = first_minimum(self.r, self.g[k])
            cn_min = float(np.interp(rm, self.edges[1:], self.cn[k])) if np.isfinite(rm) else None
            out["pairs"][k] = {"g": self.g[k].tolist(), "cn": self.cn[k].tolist(),
                               "first_min_A": None if not np.isfinite(rm) else float(rm),
                               "cn_at_first_min": cn_min}
        return out


def parse_pair(p):
    """'Li-S' or ('Li', 'S') -> ('Li', 'S')."""
    if isinstance(p, str):
        parts = p.replace(":", "-").split("-")
        if len(parts) != 2 or not all(parts):
            raise ConfigurationError(f"pair {p!r} must look like 'Li-S'")
        return parts[0].strip(), parts[1].strip()
    a, b = p
    return str(a), str(b)


def compute_rdf(traj, pairs, r_max: float = 8.0, dr: float = 0.02, start: int = 0, stop: int | None = None,
                stride: int = 1, chunk: int = 8, timestep_fs=None) -> RDFResult:
    """Partial RDFs and running CNs averaged over frames start:stop:stride.

    traj: source / path / list of Atoms; pairs: e.g. ["P-S", "Li-Li"].
    r_max Å, dr bin width Å.  Any r_max works (all images are visited).
    """
    src = as_trajectory(traj, timestep_fs)
    pairs = [parse_pair(p) for p in pairs]
    idx = {s: species_indices(src.species, s) for p in pairs for s in p}
    nb = int(np.ceil(r_max / dr))
    edges = np.arange(nb + 1) * dr
    gsum = {p: np.zeros(nb) for p in pairs}
    csum = {p: np.zeros(nb) for p in pairs}
    nf = 0
    stop = src.n_frames if stop is None else min(stop, src.n_frames)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    for s, P, C in src.iter_chunks(max(chunk * stride, 1)):
        fr = np.arange(s, s + len(P))
        keep = (fr >= start) & (fr < stop) & ((fr - start) % stride == 0)
        if not keep.any():
            continue
        P, C = P[keep], np.asarray(C)[keep]
        f = len(P)
        vol = np.abs(np.linalg.det(C))
        nf += f
        for a, b in pairs:
            ia, ib = idx[a], idx[b]
            same = a == b
            counts = np.zeros((f, nb))
            for d, m in pair_distances_frames(P[:, ia], P[:, ib], C, r_max, same):
                fi = np.broadcast_to(np.arange(f)[:, None, None], d.shape)[m]
                bi = np.minimum((d[m] / dr).astype(np.int64), nb - 1)
                counts += np.bincount(fi * nb + bi, minlength=f * nb).reshape(f, nb)
            na, nbb = len(ia), len(ib) - (1 if same else 0)
            if nbb <= 0:
                raise ConfigurationError(f"pair {a}-{b}: only one {b} atom, no pairs")
            gsum[(a, b)] += np.sum(counts * vol[:, None], axis=0) / (na * nbb) / shell
            csum[(a, b)] += np.cumsum(counts, axis=1).sum(axis=0) / na
    if nf == 0:
        raise ConfigurationError("no frames selected for the RDF")
    key = lambda p: f"{p[0]}-{p[1]}"  # noqa: E731
    return RDFResult(0.5 * (edges[1:] + edges[:-1]), edges, {key(p): gsum[p] / nf for p in pairs},
                     {key(p): csum[p] / nf for p in pairs}, nf)


def first_minimum(r, g, smooth: float = 0.1, min_peak: float = 1.0):
    """First minimum of g(r) after its first peak: (r_min, g_min) Å.

    g is smoothed by a moving average of width ``smooth`` Å; the first peak is
    the first local maximum above ``min_peak``; the minimum is the first point
    after it where the smoothed g stops decreasing (the centre of a flat zero
    plateau, as between crystal shells).  Returns (nan, nan) if none.
    """
    r = np.asarray(r, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    dr = r[1] - r[0]
    w = max(1, int(round(smooth / dr)))
    gs = np.convolve(g, np.ones(w) / w, mode="same") if w > 1 else g.copy()
    above = np.flatnonzero(gs > min_peak)
    if above.size == 0:
        return float("nan"), float("nan")
    i = above[0]
    while i + 1 < len(gs) and gs[i + 1] >= gs[i]:
        i += 1
    j = i
    while j + 1 < len(gs) and gs[j + 1] < gs[j]:
        j += 1
    if j + 1 >= len(gs):
        return float("nan"), float("nan")
    k = j
    while k + 1 < len(gs) and gs[k + 1] == gs[j]:
        k += 1
    m = (j + k) // 2
    return float(r[m]), float(g[m])
