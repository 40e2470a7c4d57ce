"""Throughput of the streaming diffusion pipeline on a large H5MD file.

Writes an H5MD trajectory of F frames × N atoms (1/3 Li hopping, the rest a
vibrating framework) chunk by chunk, then times
``analyze_diffusion(H5MDTrajectory(path), 'Li')`` (read in frame chunks →
unwrap → drift correction → FFT MSD → fits) and the RDF on a frame subset.

Usage: python benchmarks/analysis_speed.py [--frames 20000] [--atoms 1000] [--path /tmp/speed.h5]
"""
from __future__ import annotations

import argparse
import time

import h5py
import numpy as np

from mtpjax.analysis.diffusion import analyze_diffusion
from mtpjax.analysis.rdf import compute_rdf
from mtpjax.analysis.trajectory import H5MDTrajectory


def write(path, F, N, L=24.0, dt=10.0, chunk=2000, seed=0):
    rng = np.random.default_rng(seed)
    n_li = N // 3
    sp = np.array([3] * n_li + [16] * (N - n_li))
    base = rng.uniform(0, L, (N, 3))
    cur = np.zeros((n_li, 3))
    with h5py.File(path, "w") as f:
        g = f.create_group("particles/all")
        pos = g.create_dataset("position/value", (F, N, 3), dtype="f4", chunks=(min(chunk, F), N, 3))
        g["position/time"] = np.arange(F) * dt
        g["position/step"] = np.arange(F)
        g.create_group("box").attrs["boundary"] = np.array([b"periodic"] * 3)
        g["box/edges"] = np.eye(3) * L
        g["species"] = sp
        for s in range(0, F, chunk):
            f_ = min(chunk, F - s)
            steps = 3.0 * (rng.poisson(0.005, (f_, n_li, 3)) - rng.poisson(0.005, (f_, n_li, 3)))
            tr = cur + np.cumsum(steps, 0)
            cur = tr[-1]
            p = np.repeat(base[None], f_, 0) + rng.normal(0, 0.1, (f_, N, 3))
            p[:, :n_li] += tr
            pos[s:s + f_] = np.mod(p, L)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--atoms", type=int, default=1000)
    ap.add_argument("--path", default="/tmp/mtpjax_speed.h5")
    ns = ap.parse_args(argv)
    t = time.perf_counter()
    write(ns.path, ns.frames, ns.atoms)
    print(f"wrote {ns.frames} x {ns.atoms} H5MD in {time.perf_counter() - t:.1f} s")
    with H5MDTrajectory(ns.path) as h:
        t = time.perf_counter()
        r = analyze_diffusion(h, "Li", drift="all")
        td = time.perf_counter() - t
        print(f"diffusion ({r.n_ions} Li, all origins): {td:.1f} s; D = {r.D:.3e} ± {r.D_err:.1e} cm2/s")
        t = time.perf_counter()
        rdf = compute_rdf(h, ["Li-S"], r_max=6.0, stride=max(1, ns.frames // 20))
        print(f"RDF Li-S over {rdf.n_frames} frames: {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
