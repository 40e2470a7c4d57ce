"""Parity plots (energy per atom, force components, PlusStress components) and
the learning curve as PNG files (matplotlib, Agg backend; extra ``plot``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mtpjax.train.loss import predict
from mtpjax.plotting import pyplot, save


def _parity(ax, ref, pred, label, unit):
    ref, pred = np.asarray(ref).ravel(), np.asarray(pred).ravel()
    if ref.size == 0:
        ax.set_visible(False)
        return
    lo, hi = min(ref.min(), pred.min()), max(ref.max(), pred.max())
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.plot(ref, pred, ".", ms=3, alpha=0.6)
    rmse = float(np.sqrt(np.mean((pred - ref) ** 2)))
    ax.set_title(f"{label}: RMSE {rmse:.3g} {unit}")
    ax.set_xlabel(f"reference ({unit})")
    ax.set_ylabel(f"MTP ({unit})")


def parity_plot(model, sets: dict, path) -> Path:
    """One PNG with E/atom, F and S parity panels; ``sets`` maps a name
    (``train``, ``valid``) to a :class:`TrainingSet` (one row each)."""
    plt = pyplot()
    fig, axes = plt.subplots(len(sets), 3, figsize=(13, 4.2 * len(sets)), squeeze=False)
    for row, (name, ts) in zip(axes, sets.items()):
        E, F, S = predict(model, ts)
        er, ep, fr, fp, sr, sp = [], [], [], [], [], []
        for k, c in enumerate(ts.configs):
            if c.energy is not None:
                er.append(c.energy / c.natoms)
                ep.append(E[k] / c.natoms)
            if c.forces is not None:
                fr.append(np.asarray(c.forces).ravel())
                fp.append(F[k].ravel())
            if c.plus_stress is not None:
                sr.append(np.asarray(c.plus_stress))
                sp.append(S[k])
        cat = lambda a: np.concatenate(a) if a else np.zeros(0)  # noqa: E731
        _parity(row[0], er, ep, f"{name} energy/atom", "eV/atom")
        _parity(row[1], cat(fr), cat(fp), f"{name} force", "eV/Å")
        _parity(row[2], cat(sr), cat(sp), f"{name} PlusStress", "eV")
    fig.tight_layout()
    return save(fig, path, dpi=110)


def learning_curve(history: list, path) -> Path:
    """Loss and (where logged) energy/force RMSE versus iteration (records
    without an ``iter``, e.g. the LM trainer's multi-start summaries, are skipped)."""
    history = [h for h in history if "iter" in h]
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    it = [h["iter"] for h in history]
    axes[0].semilogy(it, [h["loss"] for h in history])
    axes[0].set_title("loss")
    for ax, key, unit in ((axes[1], "energy_rmse", "eV/atom"), (axes[2], "force_rmse", "eV/Å")):
        for pre in ("train", "valid"):
            pts = [(h["iter"], h[f"{pre}_{key}"]) for h in history if f"{pre}_{key}" in h]
            if pts:
                ax.semilogy(*zip(*pts), label=pre)
        ax.set_title(f"{key} ({unit})")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    for ax in axes:
        ax.set_xlabel("iteration")
    fig.tight_layout()
    return save(fig, path, dpi=110)
