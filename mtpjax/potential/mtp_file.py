"""MLIP ``.mtp`` / ``.almtp`` files: the in-memory record and its reader/writer.

The record :class:`MTPFile` holds every field of the text format exactly as
MLIP writes it (see ``shared/docs/mtp.md`` §6.1). Arrays are numpy; the JAX
model (:mod:`mtpjax.potential.model`) is built from this record.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MTPFile:
    """Everything an MLIP ``.mtp`` file holds.

    Shapes: ``radial_coeffs`` (C, C, K, N_Q) indexed [central species,
    neighbour species, radial function μ, Chebyshev index β];
    ``alpha_index_basic`` (n_basic, 4) int rows {μ, a, b, c};
    ``alpha_index_times`` (n_times, 4) int rows {i, j, mult, k};
    ``alpha_moment_mapping`` (S,) int; ``species_coeffs`` (C,);
    ``moment_coeffs`` (S,).  ``radial_coeffs``/``species_coeffs``/
    ``moment_coeffs`` are ``None`` for an untrained template.
    ``species`` is the ordered list of type labels from the ``a-b`` headers of
    the radial block (MLIP-3 may write atomic numbers there); ``None`` when the
    file has no radial coefficients. ``extra`` is everything after
    ``moment_coeffs`` verbatim (bytes; e.g. the MLIP-3 active-learning state of
    an ``.almtp``).
    """

    alpha_index_basic: np.ndarray
    alpha_index_times: np.ndarray
    alpha_moment_mapping: np.ndarray
    alpha_moments_count: int
    radial_funcs_count: int
    min_dist: float = 2.0
    max_dist: float = 5.0
    radial_basis_size: int = 8
    radial_basis_type: str = "RBChebyshev"
    scaling: float = 1.0
    species_count: int | None = None
    potential_name: str | None = None
    potential_tag: str = ""
    radial_coeffs: np.ndarray | None = None
    species: list[int] | None = None
    species_coeffs: np.ndarray | None = None
    moment_coeffs: np.ndarray | None = None
    extra: bytes = b""
    source: str | None = field(default=None, compare=False)

    @property
    def is_trained(self) -> bool:
        return self.radial_coeffs is not None and self.moment_coeffs is not None

    @property
    def alpha_scalar_moments(self) -> int:
        return int(len(self.alpha_moment_mapping))
