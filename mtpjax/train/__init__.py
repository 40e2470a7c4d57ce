"""Fitting MTPs to energies, forces and stresses (``mlp train``-like).

* :func:`load_dataset`, :func:`prepare_training_set` — data (``data.py``)
* :class:`Weights`, :func:`total_loss`, :func:`error_metrics` — MLIP's loss (``loss.py``)
* :func:`linear_solve`, :func:`rescale` — exact fit of the linear coefficients (``linear.py``)
* :class:`TrainConfig`, :func:`train` — the optimiser loop with checkpoints (``trainer.py``)
"""
from mtpjax.train.data import DatasetError, TrainingSet, Weights, load_dataset, prepare_training_set, validate_labels  # noqa: F401
from mtpjax.train.linear import fit_species_energies, linear_solve, rescale  # noqa: F401
from mtpjax.train.loss import error_metrics, loss_terms, total_loss  # noqa: F401
from mtpjax.train.trainer import TrainConfig, TrainResult, train  # noqa: F401
