"""Active learning: MaxVol active sets, extrapolation grades, state files,
reference calculators, label dispatch, the training-set store and the
learning-on-the-fly loop.

Submodules: :mod:`.rows` (selection-matrix rows ∂E/∂θ, ∂V_i/∂θ),
:mod:`.maxvol` (active set, grades, MaxVol selection), :mod:`.grade`
(calc-grade / select-add), :mod:`.state` (MLIP ``.almtp``/``.als`` files),
:mod:`.md_grade` (grades on device for the MD hook; fused E+F+S+grade),
:mod:`.reference` (tblite / VASP / EMT / any ASE calculator),
:mod:`.dispatch` (executors, retries, timeouts), :mod:`.labelling` (labels
into the HDF5 training store, :mod:`mtpjax.io.store`), :mod:`.bootstrap` (the
first labels), :mod:`.explore` (graded MTP-MD of one system), :mod:`.learn`
(the loop, ``mtpjax learn``).
"""
from mtpjax.active.grade import build_active_set, grade_configs, select_add  # noqa: F401
from mtpjax.active.maxvol import ActiveSet, ActiveSetError, grades, select  # noqa: F401
from mtpjax.active.rows import selection_rows  # noqa: F401
from mtpjax.active.state import read_state, write_state  # noqa: F401
