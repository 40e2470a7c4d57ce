"""Readers/writers of MLIP ``.mtp``/``.almtp`` and ``.cfg`` files."""
from __future__ import annotations

import io
import re
import time
from pathlib import Path

import numpy as np
import pytest

from mtpjax.errors import FileFormatError
from mtpjax.io.cfg import Configuration, format_cfg, iter_cfg, read_cfg, write_cfg
from mtpjax.io.mtp import MTPFile, read_mtp, write_mtp

from refdata import REF, TEMPLATES

POTENTIALS = sorted((REF / "potentials").glob("*")) + [REF / "training" / "mlip2_l08_trained.mtp"]
TEMPLATE_FILES = sorted(TEMPLATES.glob("*.almtp"))
CFG_FILES = (sorted((REF / "inputs").glob("*.cfg")) + sorted((REF / "training").glob("*.cfg"))
             + sorted((REF / "mlip2_out").glob("*.cfg")) + sorted((REF / "mlip3_out").glob("*.cfg")))
# files written by MLIP itself (the inputs/ and training/ cfgs come from a Python script)
MLIP_CFG_FILES = sorted((REF / "mlip2_out").glob("*.cfg")) + sorted((REF / "mlip3_out").glob("*.cfg"))

# level -> (alpha_moments_count, basic, times, S, K) from mlip_ref/README.md
LEVELS = {
    2: (1, 1, 0, 1, 1), 4: (2, 1, 1, 2, 1), 6: (8, 5, 5, 5, 2), 8: (18, 11, 14, 9, 2),
    10: (41, 25, 42, 16, 3), 12: (84, 46, 117, 29, 3), 14: (174, 81, 348, 52, 4),
    16: (350, 130, 969, 92, 4), 18: (718, 201, 2634, 163, 5), 20: (1352, 295, 6349, 288, 5),
    22: (2621, 421, 15431, 500, 6), 24: (4991, 581, 36170, 864, 6), 26: (9396, 706, 82520, 1464, 6),
    28: (17366, 866, 180069, 2445, 6),
}


def _ids(paths):
    return [p.name for p in paths]


def _arrays_equal(a: MTPFile, b: MTPFile):
    for name in ("alpha_index_basic", "alpha_index_times", "alpha_moment_mapping",
                 "radial_coeffs", "species_coeffs", "moment_coeffs"):
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            assert x is None and y is None, name
        else:
            assert x.shape == y.shape, name
            assert np.array_equal(x, y), name
    for name in ("alpha_moments_count", "radial_funcs_count", "min_dist", "max_dist",
                 "radial_basis_size", "radial_basis_type", "scaling", "species_count",
                 "potential_name", "potential_tag", "species", "extra"):
        assert getattr(a, name) == getattr(b, name), name


# ---------------------------------------------------------------------------
# .mtp: reading
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", POTENTIALS, ids=_ids(POTENTIALS))
def test_read_reference_potentials(path):
    m = read_mtp(path)
    assert m.is_trained
    C, K, nq = m.species_count, m.radial_funcs_count, m.radial_basis_size
    assert m.radial_coeffs.shape == (C, C, K, nq)
    assert m.species == list(range(C))
    assert m.species_coeffs.shape == (C,)
    assert m.moment_coeffs.shape == (m.alpha_scalar_moments,)
    assert m.radial_basis_type == "RBChebyshev"
    assert m.source == str(path)
    assert 0 < m.scaling < 1
    if path.suffix == ".almtp":
        assert m.extra.startswith(b"#MVS_v1.1\nenergy_weight ")
    else:
        assert m.extra == b""
    # the parameter count of §4.5
    n = m.radial_coeffs.size + C + m.alpha_scalar_moments
    level = {"synth_l08_s1.mtp": 26}.get(path.name)
    if level is not None:
        assert n == level


def test_read_synth_values():
    m = read_mtp(REF / "potentials" / "synth_l08_s3.mtp")
    assert m.potential_name == "synth_l08_s3_seed8"
    assert m.scaling == 0.02
    assert m.min_dist == 1.4 and m.max_dist == 5.0
    assert m.radial_coeffs[0, 1, 1, 7] == -5.538800291732544e-01
    assert m.radial_coeffs[2, 0, 0, 0] == -1.138692782689117e-01
    assert m.species_coeffs.tolist() == [-2.357935452598511e+00, -2.969001387865791e+00,
                                         -2.110533827814640e+00]
    assert m.alpha_index_times[5].tolist() == [5, 5, 2, 13]
    assert m.alpha_moment_mapping.tolist() == [0, 10, 11, 12, 13, 14, 15, 16, 17]


def test_read_als_potential_part():
    """MLIP-2 .als state files begin with the potential text (no newline before '\\n^')."""
    als = REF / "mlip2_out" / "m2_l08_trained.calc-grade.state.als"
    m = read_mtp(als)
    ref = read_mtp(REF / "potentials" / "m2_l08_trained.mtp")
    assert np.array_equal(m.radial_coeffs, ref.radial_coeffs)
    assert np.array_equal(m.moment_coeffs, ref.moment_coeffs)
    assert m.extra.startswith(b"^")
    raw = als.read_bytes()
    assert m.to_text().encode() + m.extra == raw


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=_ids(TEMPLATE_FILES))
def test_read_templates(path):
    m = read_mtp(path)
    assert not m.is_trained
    assert m.radial_coeffs is None and m.species is None and m.species_coeffs is None
    level = int(re.search(r"(\d+)\.almtp$", path.name).group(1))
    n_mom, n_basic, n_times, S, K = LEVELS[level]
    assert m.alpha_moments_count == n_mom
    assert m.alpha_index_basic.shape == (n_basic, 4)
    assert m.alpha_index_times.shape == (n_times, 4)
    assert m.alpha_scalar_moments == S
    assert m.radial_funcs_count == K
    assert (m.min_dist, m.max_dist, m.radial_basis_size) == (2.0, 5.0, 8)
    assert m.species_count in (1, 3)
    # writer/reader round trip of a template
    _arrays_equal(read_mtp(write_mtp(m)), m)


def test_template_without_species_count_and_comments(tmp_path):
    # the shipped templates are clean; MLIP-3's documentation shows them with '<<<' comments
    text = (TEMPLATES / "08.almtp").read_text()
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("species_count"))
    text = text.replace("\tmin_dist = 2", "\tmin_dist = 2 <<< minimal distance, in angstrom")
    text = text.replace("\tradial_basis_size = 8", "\tradial_basis_size = 8 <<< 8,6,10 = {x}")
    m = read_mtp(text)
    assert m.species_count is None
    out = write_mtp(m)
    assert "species_count" not in out
    assert "<<<" not in out
    _arrays_equal(read_mtp(out), m)


def test_commented_template_from_mlip3_readme():
    text = (TEMPLATES / "readme.txt").read_text()
    text = text[text.index("\nMTP\n") + 1:]
    assert "<<<" in text
    m = read_mtp(text)
    assert m.species_count == 3 and m.min_dist == 2.0 and m.radial_basis_size == 8
    _arrays_equal(m, read_mtp(TEMPLATES / "08.almtp").__class__(**{
        **read_mtp(TEMPLATES / "08.almtp").__dict__, "species_count": 3}))


def test_training_untrained_template():
    m = read_mtp(REF / "training" / "l08_untrained.mtp")
    assert not m.is_trained and m.species_count == 3 and m.min_dist == 2.0


@pytest.mark.parametrize("ending", ["\r\n", "\r"])
def test_mtp_cr_line_endings(tmp_path, ending):
    src = REF / "potentials" / "synth_l08_s3.mtp"
    p = tmp_path / "cr.mtp"
    p.write_bytes(src.read_bytes().replace(b"\n", ending.encode()))
    _arrays_equal(read_mtp(p), read_mtp(src))


def test_read_from_text_bytes_and_fileobj():
    src = REF / "potentials" / "synth_l08_s1.mtp"
    ref = read_mtp(src)
    _arrays_equal(read_mtp(src.read_text()), ref)
    _arrays_equal(read_mtp(src.read_bytes()), ref)
    _arrays_equal(read_mtp(str(src)), ref)
    with open(src, "rb") as f:
        _arrays_equal(read_mtp(f), ref)


def test_radial_block_scaling_multiplies():
    text = (REF / "potentials" / "synth_l08_s3.mtp").read_text()
    text2 = text.replace("\tmin_dist", "\tscaling = 3.0\n\tmin_dist")
    m = read_mtp(text2)
    assert m.scaling == pytest.approx(0.06, rel=1e-15)
    # written back as one global value
    out = write_mtp(m)
    assert out.count("scaling") == 1
    assert read_mtp(out).scaling == m.scaling


def test_scaling_one_not_written():
    m = read_mtp(REF / "potentials" / "synth_l08_s3.mtp")
    m.scaling = 1.0
    out = write_mtp(m)
    assert "scaling" not in out
    assert read_mtp(out).scaling == 1.0


def test_arbitrary_species_labels():
    """MLIP-3 writes the type labels (e.g. atomic numbers) in the block headers."""
    m = read_mtp(REF / "potentials" / "synth_l08_s3.mtp")
    text = write_mtp(m)
    labels = {"0": "13", "1": "28", "2": "7"}
    text2 = re.sub(r"^\t\t(\d)-(\d)$", lambda mm: f"\t\t{labels[mm.group(1)]}-{labels[mm.group(2)]}",
                   text, flags=re.M)
    assert "\t\t13-28\n" in text2
    m2 = read_mtp(text2)
    assert m2.species == [13, 28, 7]
    assert np.array_equal(m2.radial_coeffs, m.radial_coeffs)
    assert write_mtp(m2) == text2


def test_trained_without_species_count():
    text = (REF / "potentials" / "synth_l08_s3.mtp").read_text()
    text2 = text.replace("species_count = 3\n", "")
    m = read_mtp(text2)
    assert m.species_count == 3 and m.species == [0, 1, 2]


# ---------------------------------------------------------------------------
# .mtp: writing
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["synth_l08_s1.mtp", "synth_l08_s3.mtp", "synth_l12_s3.mtp",
                                  "synth_l16_s3.mtp", "synth_l20_s3.mtp"])
@pytest.mark.parametrize("precision", [None, 15])
def test_write_reproduces_reference_text(name, precision, tmp_path):
    src = REF / "potentials" / name
    m = read_mtp(src)
    assert write_mtp(m, precision=precision) == src.read_text()
    write_mtp(m, tmp_path / name, precision=precision)
    assert (tmp_path / name).read_bytes() == src.read_bytes()


@pytest.mark.parametrize("name", ["m2_l08_trained.mtp", "m2_l12_trained.mtp"])
def test_write_reproduces_mlip2_trained(name, tmp_path):
    """MLIP-2 omits the newline after moment_coeffs; final_newline=False matches it exactly."""
    src = REF / "potentials" / name
    m = read_mtp(src)
    write_mtp(m, tmp_path / name, final_newline=False)
    assert (tmp_path / name).read_bytes() == src.read_bytes()
    assert write_mtp(m) == src.read_text() + "\n"


@pytest.mark.parametrize("name", ["m3_l08_cfg.almtp", "m3_l08_nbh.almtp", "m3_l12_cfg_pool.almtp"])
def test_write_almtp_with_state_is_byte_exact(name, tmp_path):
    src = REF / "potentials" / name
    m = read_mtp(src)
    out = tmp_path / name
    text = write_mtp(m, out)
    assert "#MVS" not in text  # the returned text never holds the binary state
    assert out.read_bytes() == src.read_bytes()
    write_mtp(m, out, write_extra=False)
    assert out.read_bytes() == text.encode()


def _random_mtp(seed: int, C: int = 3) -> MTPFile:
    rng = np.random.default_rng(seed)
    tmpl = read_mtp(TEMPLATES / "10.almtp")
    K, nq = tmpl.radial_funcs_count, tmpl.radial_basis_size
    # random float64s: most of them are not representable with %.15e
    return MTPFile(
        alpha_index_basic=tmpl.alpha_index_basic, alpha_index_times=tmpl.alpha_index_times,
        alpha_moment_mapping=tmpl.alpha_moment_mapping,
        alpha_moments_count=tmpl.alpha_moments_count, radial_funcs_count=K,
        min_dist=float(rng.uniform(1, 2)), max_dist=float(rng.uniform(4, 6)), radial_basis_size=nq,
        scaling=float(rng.uniform(0.01, 0.1)), species_count=C, potential_name="rand",
        radial_coeffs=rng.standard_normal((C, C, K, nq)) * 10.0 ** rng.integers(-12, 12, (C, C, K, nq)),
        species=list(range(C)), species_coeffs=rng.standard_normal(C),
        moment_coeffs=rng.standard_normal(tmpl.alpha_scalar_moments) * 1e-3)


def test_mtp_roundtrip_is_lossless():
    m = _random_mtp(1)
    text = write_mtp(m)
    _arrays_equal(read_mtp(text), m)
    # the default keeps MLIP's %.15e wherever it is exact
    nums = re.findall(r"-?\d\.\d+e[+-]\d+", text)
    lens = {len(x.lstrip("-").split("e")[0]) for x in nums}
    assert lens == {17, 18}
    # precision=15 is MLIP's format: lossy in the 16th digit
    m15 = read_mtp(write_mtp(m, precision=15))
    assert not np.array_equal(m15.radial_coeffs, m.radial_coeffs)
    np.testing.assert_allclose(m15.radial_coeffs, m.radial_coeffs, rtol=1e-15, atol=0)


def test_write_untrained_has_no_coefficients():
    m = _random_mtp(2)
    m.radial_coeffs = m.species_coeffs = m.moment_coeffs = m.species = None
    text = write_mtp(m)
    for key in ("radial_coeffs", "species_coeffs", "moment_coeffs"):
        assert key not in text
    m2 = read_mtp(text)
    assert not m2.is_trained
    _arrays_equal(m2, m)


def test_write_layout():
    m = read_mtp(REF / "potentials" / "synth_l08_s3.mtp")
    lines = write_mtp(m).splitlines()
    assert lines[:7] == ["MTP", "version = 1.1.0", "potential_name = synth_l08_s3_seed8",
                         "scaling = 2.000000000000000e-02", "species_count = 3", "potential_tag = ",
                         "radial_basis_type = RBChebyshev"]
    assert lines[7] == "\tmin_dist = 1.400000000000000e+00"
    assert lines[11] == "\tradial_coeffs" and lines[12] == "\t\t0-0"
    assert lines[13].startswith("\t\t\t{-3.460554467888786e-01, ")


def test_motep_reads_our_files(tmp_path):
    motep_mtp = pytest.importorskip("motep.io.mlip.mtp")
    for m in (_random_mtp(3), read_mtp(REF / "potentials" / "synth_l12_s3.mtp")):
        p = tmp_path / "ours.mtp"
        write_mtp(m, p)
        d = motep_mtp.read_mtp(p)
        assert int(d.species_count) == m.species_count
        assert float(d.scaling) == m.scaling
        assert float(d.radial_basis.min) == m.min_dist
        assert float(d.radial_basis.max) == m.max_dist
        assert int(d.radial_basis.size) == m.radial_basis_size
        assert int(d.radial_funcs_count) == m.radial_funcs_count
        assert np.array_equal(d.radial_coeffs, m.radial_coeffs)
        assert np.array_equal(d.species_coeffs, m.species_coeffs)
        assert np.array_equal(d.moment_coeffs, m.moment_coeffs)
        assert np.array_equal(d.alpha_index_basic, m.alpha_index_basic)
        assert np.array_equal(d.alpha_index_times, m.alpha_index_times)
        assert np.array_equal(d.alpha_moment_mapping, m.alpha_moment_mapping)
        assert int(d.alpha_moments_count) == m.alpha_moments_count


def test_motep_reads_our_template(tmp_path):
    motep_mtp = pytest.importorskip("motep.io.mlip.mtp")
    m = read_mtp(TEMPLATES / "12.almtp")
    p = tmp_path / "t.mtp"
    write_mtp(m, p)
    d = motep_mtp.read_mtp(p)
    assert np.array_equal(d.alpha_index_times, m.alpha_index_times)
    assert int(d.alpha_scalar_moments) == m.alpha_scalar_moments


# ---------------------------------------------------------------------------
# .mtp: malformed input
# ---------------------------------------------------------------------------

SYNTH = REF / "potentials" / "synth_l08_s3.mtp"


def _bad_mtp(tmp_path, text, name="bad.mtp"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _line_of(text, needle, nth=0):
    hits = [k + 1 for k, ln in enumerate(text.splitlines()) if needle in ln]
    return hits[nth]


def _expect(exc, path, line, field):
    msg = str(exc.value)
    assert str(path) in msg, msg
    if line is not None:
        assert f"line {line}" in msg, msg
        assert exc.value.line == line
    assert field in msg, msg
    assert exc.value.field == field


def _edit(pattern, repl, count=1):
    text = SYNTH.read_text()
    new = text.replace(pattern, repl, count)
    assert new != text
    return new


def test_bad_mtp_first_line(tmp_path):
    p = _bad_mtp(tmp_path, _edit("MTP\n", "MTPX\n"))
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, 1, "MTP")


def test_bad_mtp_version(tmp_path):
    p = _bad_mtp(tmp_path, _edit("version = 1.1.0", "version = 2.0"))
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, 2, "version")


def test_bad_mtp_radial_basis_type(tmp_path):
    text = _edit("RBChebyshev", "RBShapeev")
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, 7, "radial_basis_type")
    assert "RBShapeev" in str(e.value)


def test_bad_mtp_unknown_key(tmp_path):
    text = _edit("potential_tag = \n", "potential_tag = \nfoo_bar = 3\n")
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, 7, "foo_bar")


def test_bad_mtp_missing_block(tmp_path):
    text = SYNTH.read_text()
    lines = text.splitlines(keepends=True)
    k = lines.index("\t\t2-2\n")
    text = "".join(lines[:k] + lines[k + 3:])
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, _line_of(text, "radial_coeffs"), "radial_coeffs")
    assert "expected species_count^2 = 9" in str(e.value)


def test_bad_mtp_block_out_of_order(tmp_path):
    text = _edit("\t\t1-0\n", "\t\t1-2\n")
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, _line_of(text, "\t\t1-2", 0), "radial_coeffs")


def test_bad_mtp_block_rows(tmp_path):
    text = SYNTH.read_text()
    lines = text.splitlines(keepends=True)
    k = lines.index("\t\t1-1\n")
    del lines[k + 1]
    text = "".join(lines)
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, k + 1, "radial_coeffs")
    assert "radial_funcs_count = 2" in str(e.value)


def test_bad_mtp_coefficient_row_length(tmp_path):
    text = _edit(", -2.545021938212939e-01}", "}")
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, 14, "radial_coeffs")
    assert "radial_basis_size = 8" in str(e.value)


def test_bad_mtp_non_numeric_coefficient(tmp_path):
    text = _edit("-2.545021938212939e-01}", "abc}")
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, 14, "radial_coeffs")


@pytest.mark.parametrize("key, old, new", [
    ("alpha_index_basic_count", "alpha_index_basic_count = 11", "alpha_index_basic_count = 12"),
    ("alpha_index_times_count", "alpha_index_times_count = 14", "alpha_index_times_count = 13"),
    ("alpha_scalar_moments", "alpha_scalar_moments = 9", "alpha_scalar_moments = 8"),
])
def test_bad_mtp_counts(tmp_path, key, old, new):
    text = _edit(old, new)
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, _line_of(text, key + " ="), key)


def test_bad_mtp_max_mu(tmp_path):
    text = _edit("radial_funcs_count = 2", "radial_funcs_count = 3")
    # keep the radial block consistent (3 rows per block) so that the μ check is reached
    text = re.sub(r"(\t\t\d-\d\n)(\t\t\t\{[^\n]*\}\n)", r"\1\2\2", text)
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, _line_of(text, "alpha_index_basic ="), "alpha_index_basic")


def test_bad_mtp_times_target_not_after_sources(tmp_path):
    text = _edit("{0, 15, 1, 17}", "{0, 17, 1, 17}")
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, _line_of(text, "alpha_index_times ="), "alpha_index_times")


def test_bad_mtp_times_target_out_of_range(tmp_path):
    text = _edit("{0, 15, 1, 17}", "{0, 15, 1, 18}")
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, _line_of(text, "alpha_index_times ="), "alpha_index_times")


def test_bad_mtp_mapping_out_of_range(tmp_path):
    text = _edit("16, 17}", "16, 18}")
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, _line_of(text, "alpha_moment_mapping ="), "alpha_moment_mapping")


def test_bad_mtp_non_integer_index(tmp_path):
    text = _edit("{0, 1, 0, 0}", "{0, 1.5, 0, 0}")
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, _line_of(text, "alpha_index_basic ="), "alpha_index_basic")


def test_bad_mtp_index_row_width(tmp_path):
    text = _edit("{0, 1, 0, 0}", "{0, 1, 0}")
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, _line_of(text, "alpha_index_basic ="), "alpha_index_basic")


def test_bad_mtp_species_coeffs_length(tmp_path):
    text = _edit("species_coeffs = {-2.357935452598511e+00, ", "species_coeffs = {")
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, _line_of(text, "species_coeffs ="), "species_coeffs")


def test_bad_mtp_moment_coeffs_length(tmp_path):
    text = _edit("moment_coeffs = {6.245605323312979e-01, ", "moment_coeffs = {")
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, _line_of(text, "moment_coeffs ="), "moment_coeffs")


def test_bad_mtp_partially_trained(tmp_path):
    text = "".join(ln for ln in SYNTH.read_text().splitlines(keepends=True)
                   if not ln.startswith("moment_coeffs"))
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    assert "moment_coeffs" in str(e.value) and str(p) in str(e.value)


def test_bad_mtp_missing_required(tmp_path):
    text = "".join(ln for ln in SYNTH.read_text().splitlines(keepends=True)
                   if not ln.startswith("alpha_moment_mapping"))
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    assert "alpha_moment_mapping" in str(e.value) and str(p) in str(e.value)


def test_bad_mtp_species_count_not_int(tmp_path):
    text = _edit("species_count = 3", "species_count = three")
    p = _bad_mtp(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_mtp(p)
    _expect(e, p, 5, "species_count")


# ---------------------------------------------------------------------------
# .cfg: reading
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", CFG_FILES, ids=[f"{p.parent.name}/{p.name}" for p in CFG_FILES])
def test_read_all_reference_cfgs(path):
    confs = read_cfg(path)
    assert len(confs) == path.read_text().count("BEGIN_CFG")
    for c in confs:
        n = c.natoms
        assert n > 0
        assert c.positions.shape == (n, 3) and c.types.shape == (n,)
        assert c.types.dtype.kind == "i" and (c.types >= 0).all() and c.types.max() <= 2
        assert c.pbc.all() and c.cell.shape == (3, 3) and abs(np.linalg.det(c.cell)) > 10
        if c.forces is not None:
            assert c.forces.shape == (n, 3)
            assert c.energy is not None and c.plus_stress.shape == (6,)
        for v in c.atom_data.values():
            assert v.shape == (n,)


def test_read_counts_and_features():
    assert len(read_cfg(REF / "inputs" / "al_pool.cfg")) == 300
    assert len(read_cfg(REF / "inputs" / "train.cfg")) == 48
    big = read_cfg(REF / "inputs" / "big1008.cfg")
    assert big[0].natoms == 1008 and big[0].forces is None and big[0].energy is None
    test_in = read_cfg(REF / "inputs" / "test_in.cfg")
    assert [c.features["name"] for c in test_in][:2] == ["fcc32_indist", "tric48_random"]
    assert test_in[1].cell[1].tolist() == [1.3, 9.2, 0.0]

    nbh = read_cfg(REF / "mlip3_out" / "m3_l08_nbh.calculate_grade.cfg")
    assert list(nbh[0].atom_data) == ["nbh_grades"]
    assert nbh[0].atom_data["nbh_grades"][:2].tolist() == [0.63968, 0.59025]
    assert nbh[0].features == {"ID": "0", "MV_grade": "0.725302", "name": "fcc32_indist"}

    sel = read_cfg(REF / "mlip3_out" / "m3_l08_nbh.select_add.new.cfg")
    sel = {c.features["name"]: c.features["selected_eqn_inds"] for c in sel}
    assert sel["tric48_random"] == "159,161,166,170,171,178,179,187,200,201"

    efs = read_cfg(REF / "mlip3_out" / "m3_l08_cfg.calculate_efs.cfg")
    assert efs[0].features == {"EFS_by": "MultiMTP10", "name": "fcc32_indist"}
    assert efs[0].energy == 3.542084632468
    assert efs[0].plus_stress.tolist() == [5.73001, 4.94322, 9.23193, -1.28787, 6.47762, 0.22092]

    g = read_cfg(REF / "mlip2_out" / "m2_l08_trained.calc-grade.graded.cfg")
    assert g[0].features["MV_grade"] == "0.308927"


def test_read_lossless_values():
    c = read_cfg(REF / "mlip2_out" / "synth_l08_s3.calc-efs.lossless.cfg")[0]
    assert c.forces[0, 0] == 1.0079916553570291e+01
    assert c.energy == -1.3110092905177876e+02
    assert c.plus_stress[4] == 1.9824911117528519e+01
    assert c.types[:3].tolist() == [2, 1, 0]


def test_read_cfg_speed():
    path = REF / "inputs" / "al_pool.cfg"
    read_cfg(path)
    t = time.perf_counter()
    confs = read_cfg(path)
    dt = time.perf_counter() - t
    assert len(confs) == 300
    assert dt < 1.0, f"reading al_pool.cfg took {dt:.3f} s"


def test_iter_cfg_is_lazy_and_accepts_fileobj():
    text = (REF / "inputs" / "test_in.cfg").read_text()
    it = iter_cfg(io.StringIO(text))
    first = next(it)
    assert first.features["name"] == "fcc32_indist"
    assert len(list(it)) == 7
    with open(REF / "inputs" / "test_in.cfg", "rb") as f:
        assert len(read_cfg(f)) == 8


@pytest.mark.parametrize("ending", ["\r\n", "\r"])
def test_cfg_cr_line_endings(tmp_path, ending):
    src = REF / "mlip2_out" / "synth_l08_s3.calc-efs.lossless.cfg"
    p = tmp_path / "cr.cfg"
    p.write_bytes(src.read_bytes().replace(b"\n", ending.encode()))
    a, b = read_cfg(p), read_cfg(src)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        _cfg_equal(x, y)


SMALL = """BEGIN_CFG
 Size
    2
 Supercell
    4.0 0.0 0.0
    0.0 5.0 0.0
    0.0 0.0 6.0
 AtomData:  id type       cartes_x      cartes_y      cartes_z           fx          fy          fz
    1 0  0.0 0.0 0.0  0.1 0.2 0.3
    2 1  1.0 1.5 2.0  -0.1 -0.2 -0.3
 Energy
    -3.5
 PlusStress:  xx          yy          zz          yz          xz          xy
     1.0 2.0 3.0 4.0 5.0 6.0
 Feature   name\tsmall
END_CFG

"""


def _cfg_file(tmp_path, text, name="bad.cfg"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_small_cfg(tmp_path):
    (c,) = read_cfg(_cfg_file(tmp_path, SMALL, "ok.cfg"))
    assert c.natoms == 2 and c.types.tolist() == [0, 1]
    assert c.cell.tolist() == [[4, 0, 0], [0, 5, 0], [0, 0, 6]]
    assert c.forces[1].tolist() == [-0.1, -0.2, -0.3]
    assert c.energy == -3.5
    assert c.plus_stress.tolist() == [1, 2, 3, 4, 5, 6]
    assert c.features == {"name": "small"}


def test_plus_stress_any_order(tmp_path):
    text = SMALL.replace("PlusStress:  xx          yy          zz          yz          xz          xy",
                         "PlusStress:  xy xz yz zz yy xx")
    (c,) = read_cfg(_cfg_file(tmp_path, text, "ok.cfg"))
    assert c.plus_stress.tolist() == [6, 5, 4, 3, 2, 1]


def test_virial_divided_by_volume(tmp_path):
    text = SMALL.replace("PlusStress:", "Virial:")
    (c,) = read_cfg(_cfg_file(tmp_path, text, "ok.cfg"))
    np.testing.assert_allclose(c.plus_stress, np.arange(1.0, 7.0) / 120.0, rtol=1e-15)


def test_direct_coordinates(tmp_path):
    text = SMALL.replace("cartes_x      cartes_y      cartes_z", "direct_x direct_y direct_z")
    text = text.replace("2 1  1.0 1.5 2.0", "2 1  0.25 0.5 0.5")
    (c,) = read_cfg(_cfg_file(tmp_path, text, "ok.cfg"))
    assert c.positions[1].tolist() == [1.0, 2.5, 3.0]


def test_partial_and_missing_supercell(tmp_path):
    text = SMALL.replace("    0.0 0.0 6.0\n", "")
    (c,) = read_cfg(_cfg_file(tmp_path, text, "ok.cfg"))
    assert c.pbc.tolist() == [True, True, False]
    assert c.cell[2].tolist() == [0, 0, 0]
    text = SMALL.replace(" Supercell\n    4.0 0.0 0.0\n    0.0 5.0 0.0\n    0.0 0.0 6.0\n", "")
    (c,) = read_cfg(_cfg_file(tmp_path, text, "ok2.cfg"))
    assert not c.pbc.any() and not c.cell.any()
    # written back without a Supercell, read back identically
    (c2,) = read_cfg(io.StringIO(format_cfg(c)))
    _cfg_equal(c, c2)
    assert "Supercell" not in format_cfg(c)


def test_free_columns_and_features(tmp_path):
    text = SMALL.replace("fx          fy          fz", "fx fy fz site_en charge")
    text = text.replace("0.1 0.2 0.3\n", "0.1 0.2 0.3 -1.5 0.25\n").replace(
        "-0.1 -0.2 -0.3\n", "-0.1 -0.2 -0.3 -2.5 -0.25\n")
    text = text.replace(" Feature   name\tsmall\n",
                        " Feature   name\tsmall\n Feature   note\tline one\n Feature   note\tline two\n")
    (c,) = read_cfg(_cfg_file(tmp_path, text, "ok.cfg"))
    assert c.atom_data["site_en"].tolist() == [-1.5, -2.5]
    assert c.atom_data["charge"].tolist() == [0.25, -0.25]
    assert c.features["note"] == "line one\nline two"
    (c2,) = read_cfg(io.StringIO(format_cfg(c)))
    _cfg_equal(c, c2)


def test_no_type_column_defaults_to_zero(tmp_path):
    text = SMALL.replace("id type ", "id ")
    text = text.replace("    1 0  ", "    1  ").replace("    2 1  ", "    2  ")
    (c,) = read_cfg(_cfg_file(tmp_path, text, "ok.cfg"))
    assert c.types.tolist() == [0, 0]


# ---------------------------------------------------------------------------
# .cfg: writing
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", MLIP_CFG_FILES,
                         ids=[f"{p.parent.name}/{p.name}" for p in MLIP_CFG_FILES])
def test_cfg_rewrite_reproduces_mlip_text(path, tmp_path):
    """Every file MLIP wrote (lossless or rounded) is reproduced byte for byte."""
    text = path.read_text()
    lossless = "e+0" in text
    out = tmp_path / "out.cfg"
    write_cfg(out, read_cfg(path), lossless=lossless)
    assert out.read_text() == text


@pytest.mark.parametrize("pot", ["synth_l08_s3", "synth_l20_s3", "m2_l08_trained", "m2_l12_trained"])
def test_rounded_write_of_lossless_values_matches_mlip(pot, tmp_path):
    """Our rounded output of MLIP's 17-digit values = MLIP's own rounded output (both MLIP
    versions; MLIP-3 adds the EFS_by feature). m2_l08_trained includes forces of ~1e6 that
    overflow the field widths."""
    confs = read_cfg(REF / "mlip2_out" / f"{pot}.calc-efs.lossless.cfg")
    out = tmp_path / "rounded.cfg"
    write_cfg(out, confs, lossless=False)
    assert out.read_text() == (REF / "mlip2_out" / f"{pot}.calc-efs.cfg").read_text()
    efs_by = {"synth_l08_s3": "MultiMTP10", "synth_l20_s3": "MultiMTP289",
              "m2_l08_trained": "MultiMTP10", "m2_l12_trained": "MultiMTP30"}[pot]
    for c in confs:
        c.features = {"EFS_by": efs_by, **c.features}
    m3 = REF / "mlip3_out" / f"{pot}.calculate_efs.cfg"
    assert "".join(format_cfg(c, lossless=False) for c in confs) == m3.read_text()


def test_lossless_inputs_value_exact(tmp_path):
    """inputs/*.cfg were not written by MLIP (one space less before PlusStress values);
    our rewrite is value-exact."""
    for name in ("train.cfg", "test_in_1species.cfg"):
        a = read_cfg(REF / "inputs" / name)
        out = tmp_path / name
        write_cfg(out, a)
        for x, y in zip(a, read_cfg(out)):
            _cfg_equal(x, y)


def _cfg_equal(a: Configuration, b: Configuration):
    assert np.array_equal(a.positions, b.positions)
    assert np.array_equal(a.types, b.types)
    assert np.array_equal(a.cell, b.cell)
    assert np.array_equal(a.pbc, b.pbc)
    assert a.energy == b.energy
    for name in ("forces", "plus_stress"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert np.array_equal(x, y), name
    assert a.features == b.features
    assert list(a.atom_data) == list(b.atom_data)
    for k in a.atom_data:
        assert np.array_equal(a.atom_data[k], b.atom_data[k]), k


def _random_configs(seed, n=6):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        nat = int(rng.integers(1, 40))
        scale = 10.0 ** rng.integers(-8, 8, (nat, 3))
        c = Configuration(
            positions=rng.standard_normal((nat, 3)) * 5,
            types=rng.integers(0, 90, nat),
            cell=np.diag(rng.uniform(5, 15, 3)) + rng.standard_normal((3, 3)) * 1e-3,
            pbc=np.array([True, True, k % 2 == 0]),
            energy=float(rng.standard_normal() * 1e3) if k != 3 else None,
            forces=rng.standard_normal((nat, 3)) * scale if k != 3 else None,
            plus_stress=rng.standard_normal(6) * 1e2 if k != 3 else None,
            features={"name": f"c{k}", "MV_grade": repr(rng.uniform())},
            atom_data={"nbh_grades": rng.uniform(0, 1e3, nat)} if k % 3 == 1 else {},
        )
        if not c.pbc[2]:
            c.cell[2] = 0.0
        out.append(c)
    return out


def test_cfg_lossless_roundtrip_random(tmp_path):
    confs = _random_configs(7)
    p = tmp_path / "r.cfg"
    write_cfg(p, confs)
    back = read_cfg(p)
    assert len(back) == len(confs)
    for a, b in zip(confs, back):
        _cfg_equal(a, b)
    # a single configuration and a file object are accepted too
    buf = io.StringIO()
    write_cfg(buf, confs[0])
    _cfg_equal(read_cfg(io.StringIO(buf.getvalue()))[0], confs[0])
    # append
    write_cfg(p, confs[:2], append=True)
    assert len(read_cfg(p)) == len(confs) + 2


def test_cfg_rounded_roundtrip_close():
    confs = _random_configs(8, n=3)
    back = read_cfg(io.StringIO("".join(format_cfg(c, lossless=False) for c in confs)))
    for a, b in zip(confs, back):
        np.testing.assert_allclose(b.positions, a.positions, atol=5e-7, rtol=0)
        np.testing.assert_allclose(b.cell, a.cell, atol=5e-7, rtol=0)
        if a.forces is not None:
            np.testing.assert_allclose(b.forces, a.forces, atol=5e-7, rtol=0)
            np.testing.assert_allclose(b.plus_stress, a.plus_stress, atol=5e-6, rtol=0)
            assert abs(a.energy - b.energy) <= 5e-13 * max(1.0, abs(a.energy)) + 5e-13


# ---------------------------------------------------------------------------
# .cfg: ASE conversion
# ---------------------------------------------------------------------------

def test_to_atoms_and_back():
    c = read_cfg(REF / "mlip2_out" / "synth_l08_s3.calc-efs.lossless.cfg")[1]
    atoms = c.to_atoms(["Cu", "Ag", "Au"])
    assert atoms.get_chemical_symbols()[:3] == [["Cu", "Ag", "Au"][t] for t in c.types[:3]]
    assert np.array_equal(atoms.cell[:], c.cell) and atoms.pbc.all()
    assert atoms.get_potential_energy() == c.energy
    assert np.array_equal(atoms.get_forces(), c.forces)
    vol = abs(np.linalg.det(c.cell))
    np.testing.assert_allclose(atoms.get_stress(), -c.plus_stress / vol, rtol=1e-15)
    # ASE order is xx yy zz yz xz xy, like MLIP's
    full = atoms.get_stress(voigt=False)
    assert full[1, 2] == atoms.get_stress()[3] and full[0, 1] == atoms.get_stress()[5]
    assert atoms.info["name"] == c.features["name"]

    back = Configuration.from_atoms(atoms, symbol_to_type={"Cu": 0, "Ag": 1, "Au": 2})
    assert np.array_equal(back.types, c.types)
    assert np.array_equal(back.positions, c.positions)
    np.testing.assert_allclose(back.plus_stress, c.plus_stress, rtol=1e-13)
    assert back.energy == c.energy and np.array_equal(back.forces, c.forces)
    # list mapping and the default (types stored on the atoms)
    assert np.array_equal(Configuration.from_atoms(atoms, ["Cu", "Ag", "Au"]).types, c.types)
    assert np.array_equal(Configuration.from_atoms(atoms).types, c.types)


def test_to_atoms_default_mapping():
    c = read_cfg(REF / "inputs" / "test_in.cfg")[0]
    atoms = c.to_atoms()
    assert (atoms.numbers == 0).all()
    assert np.array_equal(atoms.arrays["mlip_type"], c.types)
    assert np.array_equal(atoms.get_tags(), c.types)
    assert atoms.calc is None
    back = Configuration.from_atoms(atoms)
    assert np.array_equal(back.types, c.types)
    assert back.energy is None and back.forces is None and back.plus_stress is None


def test_from_plain_ase_atoms():
    from ase import Atoms
    from ase.build import bulk
    from ase.calculators.emt import EMT
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 1, 1)
    atoms.rattle(0.05, seed=1)
    atoms.calc = EMT()
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    c = Configuration.from_atoms(atoms, symbol_to_type={"Cu": 0})
    assert c.types.tolist() == [0] * len(atoms)
    assert c.energy == e and np.array_equal(c.forces, f)
    np.testing.assert_allclose(c.plus_stress, -s * atoms.get_volume(), rtol=1e-14)
    # atomic numbers as default labels
    assert (Configuration.from_atoms(atoms).types == 29).all()
    mol = Configuration.from_atoms(Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.2]]))
    assert not mol.pbc.any() and not mol.cell.any()


# ---------------------------------------------------------------------------
# .cfg: malformed input
# ---------------------------------------------------------------------------

def _cfg_error(tmp_path, text):
    p = _cfg_file(tmp_path, text)
    with pytest.raises(FileFormatError) as e:
        read_cfg(p)
    return p, e


def test_bad_cfg_missing_size(tmp_path):
    p, e = _cfg_error(tmp_path, SMALL.replace(" Size\n    2\n", ""))
    _expect(e, p, 6, "Size")  # reported at the AtomData line


def test_bad_cfg_no_size_at_all(tmp_path):
    text = "BEGIN_CFG\n Energy\n    1.0\nEND_CFG\n"
    p, e = _cfg_error(tmp_path, text)
    _expect(e, p, 4, "Size")


def test_bad_cfg_size_not_integer(tmp_path):
    p, e = _cfg_error(tmp_path, SMALL.replace("    2\n", "    2.5\n", 1))
    _expect(e, p, 3, "Size")


def test_bad_cfg_too_few_rows(tmp_path):
    p, e = _cfg_error(tmp_path, SMALL.replace("    2\n", "    3\n", 1))
    _expect(e, p, 11, "AtomData")
    assert "Size = 3" in str(e.value)


def test_bad_cfg_too_many_rows(tmp_path):
    p, e = _cfg_error(tmp_path, SMALL.replace("    2\n", "    1\n", 1))
    _expect(e, p, 10, "AtomData")
    assert "Size = 1" in str(e.value)


def test_bad_cfg_wrong_column_count(tmp_path):
    p, e = _cfg_error(tmp_path, SMALL.replace("-0.1 -0.2 -0.3", "-0.1 -0.2"))
    _expect(e, p, 10, "AtomData")


def test_bad_cfg_non_numeric(tmp_path):
    p, e = _cfg_error(tmp_path, SMALL.replace("-0.1 -0.2 -0.3", "-0.1 abc -0.3"))
    _expect(e, p, 10, "fy")


def test_bad_cfg_ids_out_of_order(tmp_path):
    p, e = _cfg_error(tmp_path, SMALL.replace("    2 1  1.0", "    3 1  1.0"))
    _expect(e, p, 10, "id")


def test_bad_cfg_negative_type(tmp_path):
    p, e = _cfg_error(tmp_path, SMALL.replace("    2 1  1.0", "    2 -1  1.0"))
    _expect(e, p, 10, "type")


def test_bad_cfg_missing_end(tmp_path):
    p, e = _cfg_error(tmp_path, SMALL.replace("END_CFG\n", ""))
    _expect(e, p, 16, "END_CFG")


def test_bad_cfg_missing_end_before_next(tmp_path):
    p, e = _cfg_error(tmp_path, SMALL.replace("END_CFG\n", "") + SMALL)
    _expect(e, p, 17, "END_CFG")


def test_bad_cfg_stress_values(tmp_path):
    p, e = _cfg_error(tmp_path, SMALL.replace("1.0 2.0 3.0 4.0 5.0 6.0", "1.0 2.0 3.0 4.0 5.0"))
    _expect(e, p, 14, "PlusStress")


def test_bad_cfg_stress_names(tmp_path):
    p, e = _cfg_error(tmp_path, SMALL.replace("xz          xy", "xz          zx"))
    _expect(e, p, 13, "PlusStress")


def test_bad_cfg_old_stress_block(tmp_path):
    p, e = _cfg_error(tmp_path, SMALL.replace("PlusStress:", "Stress:"))
    _expect(e, p, 13, "Stress")
    assert "PlusStress" in str(e.value)


def test_bad_cfg_unknown_keyword(tmp_path):
    p, e = _cfg_error(tmp_path, SMALL.replace(" Energy\n", " EnergyWeight\n    1.0\n Energy\n"))
    _expect(e, p, 11, "EnergyWeight")


def test_bad_cfg_supercell_row(tmp_path):
    p, e = _cfg_error(tmp_path, SMALL.replace("    0.0 5.0 0.0\n", "    0.0 5.0\n"))
    _expect(e, p, 6, "Supercell")


def test_bad_cfg_energy(tmp_path):
    p, e = _cfg_error(tmp_path, SMALL.replace("    -3.5\n", "    abc\n"))
    _expect(e, p, 12, "Energy")


def test_bad_cfg_garbage_outside(tmp_path):
    p, e = _cfg_error(tmp_path, "hello\n" + SMALL)
    _expect(e, p, 1, "hello")


def test_bad_cfg_direct_without_cell(tmp_path):
    text = SMALL.replace("cartes_x      cartes_y      cartes_z", "direct_x direct_y direct_z")
    text = text.replace(" Supercell\n    4.0 0.0 0.0\n    0.0 5.0 0.0\n    0.0 0.0 6.0\n", "")
    p, e = _cfg_error(tmp_path, text)
    _expect(e, p, 4, "direct_x")
