"""The benchmark suite runs end to end in its tiny mode and writes JSON + Markdown."""
import json

from benchmarks.__main__ import main


def test_suite_tiny_efs(tmp_path):
    rc = main(["run", "--tiny", "--only", "efs", "--out", str(tmp_path)])
    runs = list(tmp_path.glob("run-*.json"))
    assert len(runs) == 1
    data = json.loads(runs[0].read_text())
    assert "error" not in data["cases"]["efs"], data["cases"]["efs"]
    row = data["cases"]["efs"]["rows"][0]
    assert row["level"] == 8 and row["natoms"] > 0 and row["mtpjax_min_s"] > 0
    # same potential file read by both codes → same energy (when motep is installed)
    if "energy_diff_vs_motep_eV" in row:
        assert row["energy_diff_vs_motep_eV"] < 1e-9
    assert "| level |" in (tmp_path / "latest.md").read_text()
    assert rc == 0


def test_suite_rejects_unknown_case(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["run", "--only", "nope", "--out", str(tmp_path)])
