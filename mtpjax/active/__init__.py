"""Active learning: MaxVol active sets, extrapolation grades, state files,
reference calculators, the training-set store and the learn-on-the-fly loop.

Submodules: :mod:`.rows` (selection-matrix rows), :mod:`.maxvol` (active set,
grades, selection), :mod:`.state` (MLIP ``.almtp``/``.als`` files),
:mod:`.grade` (high-level calc-grade / select-add).
"""
from .maxvol import ActiveSet, ActiveSetError, grades, select  # noqa: F401
from .rows import param_vector, selection_rows  # noqa: F401
from .state import read_state, write_state  # noqa: F401
