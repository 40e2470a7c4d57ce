"""MLIP's training loss and error metrics (docs/spec/mtp.md §7.1).

``L = Σ_k [w_E^k (E_k − E_k^ref)² + Σ_i w_F^k |F_i − F_i^ref|² + Σ_ab w_S^k (S_ab − S_ab^ref)²] / K
      + w_P · P(c)``

with the per-configuration weights of :class:`~mtpjax.train.data.Weights`
(already divided by K in the label arrays) and MLIP's orthonormality penalty
``P = Σ_μ (‖c_μ‖² − 1)² + Σ_{μ<μ'} (c_μ·c_μ')²`` on the radial coefficient
vectors c_μ (all species pairs and β concatenated).

The trainable parameters are θ in MLIP's order (:mod:`mtpjax.potential.params`);
``scaling`` and the basis are held in the model (MLIP changes ``scaling`` only by
its discrete rescaling search).
"""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from mtpjax.potential.model import MTP, efs_batch
from mtpjax.potential.params import with_params
from mtpjax.units import EV_PER_A3_IN_GPA


def radial_penalty(radial) -> jax.Array:
    """MLIP's penalty Σ_μ(‖c_μ‖²−1)² + Σ_{μ<μ'}(c_μ·c_μ')² (dimensionless)."""
    k = radial.shape[2]
    c = jnp.moveaxis(radial, 2, 0).reshape(k, -1)
    g = c @ c.T
    diag = jnp.diag(g)
    off = jnp.sum(jnp.triu(g, 1) ** 2)
    return jnp.sum((diag - 1.0) ** 2) + off


def batch_loss_terms(model: MTP, geom, labels):
    """(energy, force, stress) weighted squared-error sums of one batch."""
    e_ref, e_w, _, f_ref, f_w, _, s_ref, s_w, _, _ = labels
    e, f, s, _ = efs_batch(model, *geom)
    le = jnp.sum(e_w * (e - e_ref) ** 2)
    lf = jnp.sum(f_w[:, None] * (f - f_ref) ** 2)
    ls = jnp.sum(s_w * (s - s_ref) ** 2)
    return le, lf, ls


def loss_terms(theta, model: MTP, data, penalty_weight: float = 0.0):
    """Loss parts dict (``energy``, ``force``, ``stress``, ``penalty``) at the coefficients θ over all
    batches; ``data`` is :meth:`TrainingSet.device_args`."""
    m = with_params(model, theta)
    le = lf = ls = 0.0
    for geom, labels in data:  # a handful of batches: unrolled inside jit
        a, b, c = batch_loss_terms(m, geom, labels)
        le, lf, ls = le + a, lf + b, ls + c
    pen = penalty_weight * radial_penalty(m.radial_coeffs) if penalty_weight else jnp.zeros(())
    return {"energy": le, "force": lf, "stress": ls, "penalty": pen}


def total_loss(theta, model: MTP, data, penalty_weight: float = 0.0) -> jax.Array:
    """The scalar training loss at θ (see module docstring)."""
    t = loss_terms(theta, model, data, penalty_weight)
    return t["energy"] + t["force"] + t["stress"] + t["penalty"]


# ------------------------------------------------------------------ metrics
def predict(model: MTP, tset):
    """Per-configuration predictions: lists of E (eV), F (N,3) eV/Å, S (6,) eV."""
    n = tset.n_configs
    E, F, S = [None] * n, [None] * n, [None] * n
    for batch in tset.batches:
        e, f, s, _ = efs_batch(model, *batch.device_args())
        e, f, s = np.asarray(e), np.asarray(f), np.asarray(s)
        for b, (k, o, na) in enumerate(zip(batch.members, batch.offsets, batch.sizes)):
            E[k], F[k], S[k] = float(e[b]), f[o : o + na], s[b]
    return E, F, S


def error_metrics(model: MTP, tset, predictions=None) -> dict:
    """Errors of ``model`` on a :class:`TrainingSet` (only labelled quantities).

    Keys: ``energy_mae``/``energy_rmse`` (eV/atom), ``force_mae``/``force_rmse``
    (eV/Å per Cartesian component), ``force_rms_mlip`` (eV/Å, RMS of the
    per-atom error vector norm, MLIP's ``calc-errors`` "Forces RMS"),
    ``stress_mae``/``stress_rmse`` (eV per Voigt component), ``stress_rmse_gpa``
    (GPa, PlusStress/V for periodic cells), ``n_configs``.
    """
    E, F, S = predictions if predictions is not None else predict(model, tset)
    de, df, ds, dsg = [], [], [], []
    for k, c in enumerate(tset.configs):
        if c.energy is not None:
            de.append((E[k] - c.energy) / c.natoms)
        if c.forces is not None:
            df.append(F[k] - np.asarray(c.forces))
        if c.plus_stress is not None:
            d = S[k] - np.asarray(c.plus_stress)
            ds.append(d)
            if c.volume > 0:
                dsg.append(d / c.volume * EV_PER_A3_IN_GPA)
    out = {"n_configs": tset.n_configs}
    if de:
        de = np.asarray(de)
        out["energy_mae"] = float(np.mean(np.abs(de)))
        out["energy_rmse"] = float(np.sqrt(np.mean(de**2)))
    if df:
        df = np.concatenate(df)
        out["force_mae"] = float(np.mean(np.abs(df)))
        out["force_rmse"] = float(np.sqrt(np.mean(df**2)))
        out["force_rms_mlip"] = float(np.sqrt(np.mean(np.sum(df**2, axis=1))))
    if ds:
        ds = np.asarray(ds)
        out["stress_mae"] = float(np.mean(np.abs(ds)))
        out["stress_rmse"] = float(np.sqrt(np.mean(ds**2)))
        if dsg:
            out["stress_rmse_gpa"] = float(np.sqrt(np.mean(np.asarray(dsg) ** 2)))
    return out


# ------------------------------------------------------- Gauss–Newton matrix
def weighted_residuals(theta, model: MTP, data) -> jax.Array:
    """All residuals √w·(prediction − label) at θ, concatenated over batches, so
    that the data part of the loss is their squared norm."""
    m = with_params(model, theta)
    out = []
    for geom, labels in data:
        e_ref, e_w, _, f_ref, f_w, _, s_ref, s_w, _, _ = labels
        e, f, s, _ = efs_batch(m, *geom)
        out += [jnp.sqrt(e_w) * (e - e_ref), (jnp.sqrt(f_w)[:, None] * (f - f_ref)).ravel(),
                (jnp.sqrt(s_w) * (s - s_ref)).ravel()]
    return jnp.concatenate(out)


@eqx.filter_jit
def gauss_newton_matrix(theta, model: MTP, data, chunk: int = 16) -> jax.Array:
    """JᵀJ (n, n) of :func:`weighted_residuals` at θ, from forward-mode Jacobian columns computed ``chunk``
    at a time."""

    def res(x):
        return weighted_residuals(x, model, data)

    def col(t):
        return jax.jvp(res, (theta,), (t,))[1]

    j = jax.lax.map(col, jnp.eye(theta.size, dtype=theta.dtype), batch_size=chunk)  # (n, R)
    return j @ j.T
