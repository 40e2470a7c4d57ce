"""`mtpjax init` writes untrained potentials that MLIP-format readers accept,
with MLIP's basis for the level (counts from tests/data/mlip_ref/README.md)."""
import numpy as np
import pytest

from mtpjax.cli import main
from mtpjax.potential import MTP, read_mtp

# level: (alpha_moments_count, basic, times, basis functions, K)
COUNTS = {8: (18, 11, 14, 9, 2), 12: (84, 46, 117, 29, 3), 16: (350, 130, 969, 92, 4)}


@pytest.mark.parametrize("level", sorted(COUNTS))
def test_init_writes_mlip_readable_template(tmp_path, capsys, level):
    out = tmp_path / "pot.mtp"
    assert main(["init", "--level", str(level), "--species", "3", "15", "16", "--cutoff", "5.0", str(out)]) == 0
    f = read_mtp(out)
    assert not f.is_trained and f.species_count == 3 and f.max_dist == 5.0
    assert (f.alpha_moments_count, len(f.alpha_index_basic), len(f.alpha_index_times),
            len(f.alpha_moment_mapping), f.radial_funcs_count) == COUNTS[level]
    text = out.read_text()
    assert text.startswith("MTP\nversion = 1.1.0\n") and "radial_coeffs" not in text
    # motep (an independent MLIP-format reader) parses it to the same tables
    motep_io = pytest.importorskip("motep.io.mlip.mtp")
    d = motep_io.read_mtp(out)
    assert d.species_count == 3
    np.testing.assert_array_equal(np.asarray(d.alpha_index_times), f.alpha_index_times)
    np.testing.assert_array_equal(np.asarray(d.alpha_moment_mapping), f.alpha_moment_mapping)
    # the model built without any template has MLIP's parameter count (README table)
    m = MTP.from_level(level, species=[3, 15, 16], cutoff=5.0)
    assert m.n_params == {8: 156, 12: 248, 16: 383}[level]
    assert main(["level", str(out)]) == 0
    assert f"basis functions     {COUNTS[level][3]}" in capsys.readouterr().out


def test_init_bad_arguments(tmp_path, capsys):
    assert main(["init", "--level", "7", "--species", "0", str(tmp_path / "x.mtp")]) == 2
    assert "level" in capsys.readouterr().err
    assert main(["init", "--level", "8", "--species", "0", "0", str(tmp_path / "x.mtp")]) == 2
    assert "distinct" in capsys.readouterr().err
