"""MLIP ``.cfg`` configurations: the in-memory record and its reader/writer.

See ``docs/spec/mtp.md`` §6.2 for the format.

* :func:`read_cfg` / :func:`iter_cfg` read any number of configurations
  (path or file object; CR/CRLF tolerated). ``AtomData`` columns are free:
  ``id`` (must be 1..N in order), ``type`` (default 0), ``cartes_x/y/z`` or
  ``direct_x/y/z`` (fractional, converted with the Supercell rows), ``fx fy
  fz``; every other column (``site_en``, ``charge``, ``nbh_grades``,
  ``magmom_*`` ...) goes to ``Configuration.atom_data`` as float64 (``ghost``
  as int64). ``PlusStress:`` components may come in any order; ``Virial:`` is
  divided by |det(cell)| (MLIP's rule); ``Stress:`` (old sign convention) and
  any unknown keyword are errors. Positions, forces, Energy, PlusStress/Virial
  and Supercell rows must be finite numbers, the Supercell rows non-zero and
  linearly independent, ``type`` and ``ghost`` integers 0 … 2³¹−1. Every error
  is a :class:`~mtpjax.errors.FileFormatError` naming file, line and field
  (also for a file that is not UTF-8 text).
* :func:`write_cfg` / :func:`format_cfg` write MLIP's layout. ``lossless=True``
  (default) writes ``%.16e`` (17 significant digits) exactly like MLIP's
  lossless build, ``lossless=False`` MLIP's default rounded output; both were
  checked byte for byte against the MLIP-2/MLIP-3 outputs in
  ``tests/data/mlip_ref``.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from mtpjax.errors import ConfigurationError, FileFormatError
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers
from ase.data import chemical_symbols


@dataclass
class Configuration:
    """One MLIP configuration.

    ``positions`` (N, 3) Cartesian Å; ``types`` (N,) int (MLIP type labels as
    written in the file); ``cell`` (3, 3) lattice vectors as rows in Å, with a
    zero row for every non-periodic direction (``pbc`` (3,) bool says which
    rows were present in ``Supercell``); ``energy`` eV or None; ``forces``
    (N, 3) eV/Å or None; ``plus_stress`` (6,) eV in MLIP order
    xx yy zz yz xz xy (= −∂E/∂ε, ASE stress = −plus_stress/V) or None;
    ``features`` ordered ``{key: value}`` (a key repeated in the file has its
    values joined with ``\\n``); ``atom_data`` any further per-atom columns
    (``site_en``, ``charge``, ``nbh_grades``, ...) as (N,) arrays keyed by
    column name.
    """

    positions: np.ndarray
    types: np.ndarray
    cell: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))
    pbc: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=bool))
    energy: float | None = None
    forces: np.ndarray | None = None
    plus_stress: np.ndarray | None = None
    features: dict = field(default_factory=dict)
    atom_data: dict = field(default_factory=dict)

    @property
    def natoms(self) -> int:
        return int(len(self.positions))

    # ------------------------------------------------------------------
    # ASE conversion
    # ------------------------------------------------------------------
    @property
    def volume(self) -> float:
        """|det(cell)| (0 unless all three directions are periodic)."""
        return float(abs(np.linalg.det(np.asarray(self.cell, dtype=float))))

    def to_atoms(self, type_to_symbol=None):
        """Convert to :class:`ase.Atoms`.

        ``type_to_symbol``: a dict ``{type: symbol or atomic number}`` or a
        sequence indexed by type. ``None`` gives every atom the dummy element
        ``X`` (atomic number 0). In every case the MLIP types are kept in
        ``atoms.arrays["mlip_type"]`` (and as ``atoms.tags``) so that
        :meth:`from_atoms` gets them back without a mapping. Cell rows and
        ``pbc`` are copied; ``features`` go to ``atoms.info`` and the extra
        per-atom columns to ``atoms.arrays``. If energy/forces/stress are
        present a ``SinglePointCalculator`` carries them, with
        ``stress = -plus_stress / V`` (ASE Voigt order xx yy zz yz xz xy, the
        same order as MLIP's); the stress is omitted for a non-periodic cell.
        """
        types = np.asarray(self.types, dtype=np.int64)
        if type_to_symbol is None:
            numbers = np.zeros(len(types), dtype=np.int64)
        else:
            def num(t):
                try:
                    v = type_to_symbol[int(t)]
                except (KeyError, IndexError):
                    raise ConfigurationError(f"type {int(t)} is not in type_to_symbol") from None
                if isinstance(v, str):
                    if v not in atomic_numbers:
                        raise ConfigurationError(f"unknown chemical symbol {v!r}")
                    return atomic_numbers[v]
                return int(v)
            lut = {int(t): num(t) for t in np.unique(types)}
            numbers = np.array([lut[int(t)] for t in types], dtype=np.int64)
        atoms = Atoms(numbers=numbers, positions=np.asarray(self.positions, dtype=float),
                      cell=np.asarray(self.cell, dtype=float), pbc=np.asarray(self.pbc, dtype=bool))
        atoms.set_array("mlip_type", types.copy())
        atoms.set_tags(types.copy())
        for k, v in self.atom_data.items():
            atoms.set_array(k, np.asarray(v).copy())
        atoms.info.update(self.features)
        results = {}
        if self.energy is not None:
            results["energy"] = float(self.energy)
            results["free_energy"] = float(self.energy)
        if self.forces is not None:
            results["forces"] = np.asarray(self.forces, dtype=float).copy()
        if self.plus_stress is not None:
            vol = self.volume
            if vol > 0:
                results["stress"] = -np.asarray(self.plus_stress, dtype=float) / vol
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        return atoms

    @classmethod
    def from_atoms(cls, atoms, symbol_to_type=None) -> "Configuration":
        """Build a configuration from :class:`ase.Atoms`.

        ``symbol_to_type``: a dict ``{symbol or atomic number: type}`` or a
        sequence of symbols/atomic numbers whose index is the type. ``None``:
        use ``atoms.arrays["mlip_type"]`` if present (see :meth:`to_atoms`),
        otherwise the atomic numbers themselves are the types (MLIP-3 accepts
        atomic numbers as labels; for MLIP-2 and LAMMPS pass a mapping to
        0..C-1). Energy, forces and stress are taken from
        ``atoms.calc.results`` if present (no calculation is triggered;
        ``plus_stress = -stress * V``, stress dropped unless the cell has a
        volume); ``atoms.info`` entries with string/number values become
        features. Cell rows of non-periodic directions are zeroed (MLIP's
        convention).
        """
        numbers = atoms.get_atomic_numbers()
        if symbol_to_type is None:
            if "mlip_type" in atoms.arrays:
                types = np.asarray(atoms.arrays["mlip_type"], dtype=np.int64).copy()
            else:
                types = numbers.astype(np.int64)
        else:
            if isinstance(symbol_to_type, dict):
                m = symbol_to_type
            else:
                m = {s: i for i, s in enumerate(symbol_to_type)}
            types = np.empty(len(numbers), dtype=np.int64)
            for i, z in enumerate(numbers.tolist()):
                sym = chemical_symbols[z]
                if sym in m:
                    types[i] = m[sym]
                elif z in m:
                    types[i] = m[z]
                else:
                    raise ConfigurationError(f"atom {i} ({sym}) is not in symbol_to_type")
        cell = np.array(atoms.cell[:], dtype=float)
        pbc = np.array(atoms.pbc, dtype=bool)
        cell[~pbc] = 0.0
        conf = cls(positions=np.array(atoms.positions, dtype=float), types=types,
                   cell=cell, pbc=pbc)
        calc = atoms.calc
        results = getattr(calc, "results", {}) if calc is not None else {}
        if "energy" in results:
            conf.energy = float(results["energy"])
        if "forces" in results:
            conf.forces = np.array(results["forces"], dtype=float)
        if "stress" in results:
            st = np.asarray(results["stress"], dtype=float)
            if st.shape == (3, 3):
                st = st[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
            vol = abs(np.linalg.det(cell))
            if vol > 0:
                conf.plus_stress = -st * vol
        for k, v in atoms.info.items():
            if isinstance(v, (str, int, float, np.integer, np.floating)) and not isinstance(v, bool):
                conf.features[str(k)] = str(v)
        return conf


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------

_STRESS_NAMES = ("xx", "yy", "zz", "yz", "xz", "xy")
_KEYWORDS = {"Size", "Supercell", "AtomData:", "Energy", "PlusStress:", "Virial:", "Stress:",
             "Feature", "END_CFG", "BEGIN_CFG"}
_NUM_START = set("0123456789+-.")
_INT_COLUMNS = {"ghost"}
_MAX_INT = 2**31 - 1  # MLIP's int: the largest type label / integer column value


def _strict_fromstring(text: str, dtype=np.float64) -> np.ndarray:
    if not text.strip():
        return np.zeros(0, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            return np.fromstring(text, dtype=dtype, sep=" ")
        except (DeprecationWarning, ValueError) as exc:
            raise ValueError(str(exc)) from None


@contextlib.contextmanager
def _open_text(source, mode="r"):
    if isinstance(source, (str, os.PathLike)):
        with open(source, mode, encoding="utf-8", newline=None if "r" in mode else "") as f:
            yield f, str(source)
        return
    name = getattr(source, "name", None)
    name = str(name) if isinstance(name, (str, os.PathLike)) else None
    if isinstance(source, (io.RawIOBase, io.BufferedIOBase)) or "b" in getattr(source, "mode", ""):
        w = io.TextIOWrapper(source, encoding="utf-8", newline=None if "r" in mode else "")
        try:
            yield w, name
        finally:
            w.detach()
        return
    yield source, name


class _Lines:
    """Line iterator with 1-based numbers and one-line push-back."""

    __slots__ = ("_it", "lineno", "_back")

    def __init__(self, f):
        self._it = iter(f)
        self.lineno = 0
        self._back = None

    def next(self):
        if self._back is not None:
            line, self._back = self._back, None
            self.lineno += 1
            return line
        line = next(self._it, None)
        if line is not None:
            self.lineno += 1
        return line

    def push_back(self, line):
        self._back = line
        self.lineno -= 1

    def take(self, n):
        out = []
        if n and self._back is not None:
            out.append(self._back)
            self._back = None
            n -= 1
        out.extend(itertools.islice(self._it, n))
        return out


def read_cfg(source) -> list[Configuration]:
    """Read every configuration of an MLIP ``.cfg`` file (path or text file object)."""
    return list(iter_cfg(source))


def iter_cfg(source):
    """Iterate over the configurations of an MLIP ``.cfg`` file.

    Raises :class:`FileFormatError` naming the file, the 1-based line and
    the field for every malformed input.
    """
    with _open_text(source) as (f, path):
        lines = _Lines(f)
        try:
            while True:
                line = lines.next()
                if line is None:
                    return
                s = line.strip()
                if not s:
                    continue
                if s != "BEGIN_CFG":
                    word = s.split()[0]
                    raise FileFormatError(f"expected BEGIN_CFG, found {_short(s)!r}", path=path,
                                          line=lines.lineno, field=word)
                yield _parse_one(lines, path)
        except UnicodeDecodeError as exc:
            raise FileFormatError(f"not a text (UTF-8) file: byte 0x{exc.object[exc.start]:02x} is not UTF-8",
                                  path=path, line=_bad_utf8_line(source, lines.lineno + 1)) from None


def _bad_utf8_line(source, fallback: int) -> int:
    """The 1-based line of the first byte of the file ``source`` that is not UTF-8 (``fallback`` when
    ``source`` is not a path: the text stream decodes ahead of the line it returns)."""
    if not isinstance(source, (str, os.PathLike)):
        return fallback
    with open(source, "rb") as f:
        data = f.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data[: exc.start].count(b"\n") + 1
    return fallback


def _short(s: str, n: int = 60) -> str:
    s = s.strip()
    return s if len(s) <= n else s[: n - 3] + "..."


def _parse_one(lines: _Lines, path) -> Configuration:
    """Parse one configuration, from the line after its ``BEGIN_CFG`` to its
    ``END_CFG``: :meth:`_CfgBlock.scan` reads the keyword blocks,
    :meth:`_CfgBlock.build` checks and assembles them."""
    block = _CfgBlock(lines, path)
    block.scan()
    return block.build()


class _CfgBlock:
    """The fields of one configuration while it is read.

    ``scan`` dispatches every keyword line through :data:`_KEYWORD_HANDLERS`
    (one method per keyword: ``Size``, ``Supercell``, ``AtomData:``,
    ``Energy``, ``PlusStress:``/``Virial:``, ``Feature``, and the rejected
    ``Stress:`` and nested ``BEGIN_CFG``); ``build`` turns the collected raw
    fields into a :class:`Configuration`.
    """

    __slots__ = ("lines", "path", "begin", "size", "cell_rows", "have_cell", "atom_block",
                 "energy", "stress", "virial", "features")

    def __init__(self, lines: _Lines, path):
        self.lines = lines
        self.path = path
        self.begin = lines.lineno
        self.size = None
        self.cell_rows: list = []
        self.have_cell = False
        self.atom_block = None  # (header line, columns, first row line, row texts)
        self.energy = None
        self.stress = None
        self.virial = None  # (values, line)
        self.features: dict = {}

    def E(self, reason, line, field):
        """The :class:`FileFormatError` of this file."""
        return FileFormatError(reason, path=self.path, line=line, field=field)

    def scan(self) -> None:
        """Read keyword lines up to ``END_CFG``: reject stray numeric lines and
        repeated keywords (``Feature`` may repeat), dispatch the others."""
        lines = self.lines
        seen: dict = {}
        last_block = None
        while True:
            line = lines.next()
            if line is None:
                raise self.E(f"missing END_CFG (configuration begins on line {self.begin})",
                             lines.lineno, "END_CFG")
            s = line.strip()
            if not s:
                continue
            lineno = lines.lineno
            parts = s.split(None, 1)
            word = parts[0]
            if word[0] in _NUM_START:
                if last_block == "AtomData:":
                    raise self.E(f"more AtomData rows than Size = {self.size}", lineno, "AtomData")
                raise self.E(f"unexpected numeric line {_short(s)!r}", lineno, last_block or word)
            if word in seen and word != "Feature":
                raise self.E(f"{word} given twice in one configuration (first on line "
                             f"{seen[word]})", lineno, word.rstrip(":"))
            seen.setdefault(word, lineno)
            last_block = word
            if word == "END_CFG":
                return
            handler = _KEYWORD_HANDLERS.get(word)
            if handler is None:
                raise self.E(f"unknown keyword {word!r} in a configuration", lineno, word)
            handler(self, parts[1] if len(parts) > 1 else None, lineno)

    def _value_line(self, rest, field) -> str:
        """The value of ``Size``/``Energy``/``PlusStress:``...: the rest of the
        keyword line, else the next non-blank line."""
        if rest is not None:
            return rest
        while True:
            ln = self.lines.next()
            if ln is None:
                raise self.E(f"end of file while reading {field} (missing END_CFG of the "
                             f"configuration that begins on line {self.begin})",
                             self.lines.lineno, field)
            t = ln.strip()
            if t:
                return t

    def _size(self, rest, lineno) -> None:
        """``Size``: the number of atoms, an integer >= 0."""
        t = self._value_line(rest, "Size")
        try:
            size = int(t)
        except ValueError:
            raise self.E(f"Size must be an integer, got {_short(t)!r}", self.lines.lineno,
                         "Size") from None
        if size < 0:
            raise self.E(f"Size must be >= 0, got {size}", self.lines.lineno, "Size")
        self.size = size

    def _supercell(self, rest, lineno) -> None:
        """``Supercell``: 1-3 rows of 3 numbers (the periodic lattice vectors, Å)."""
        lines = self.lines
        cell_rows = self.cell_rows
        self.have_cell = True
        while True:
            ln = lines.next()
            if ln is None:
                break
            t = ln.strip()
            if not t:
                continue
            if t[0] not in _NUM_START:
                lines.push_back(ln)
                break
            if len(cell_rows) == 3:
                raise self.E("Supercell has more than 3 rows", lines.lineno, "Supercell")
            try:
                row = _strict_fromstring(t)
            except ValueError:
                raise self.E(f"non-numeric Supercell row {_short(t)!r}", lines.lineno,
                             "Supercell") from None
            if row.size != 3:
                raise self.E(f"a Supercell row needs 3 numbers, found {row.size}", lines.lineno,
                             "Supercell")
            self._check_lattice_vector(cell_rows, row, t)
            cell_rows.append(row)
        if not cell_rows:
            raise self.E("Supercell without lattice vectors", lineno, "Supercell")

    def _check_lattice_vector(self, rows: list, row: np.ndarray, text: str) -> None:
        """A Supercell row: finite, not zero, not (nearly) linearly dependent on the ``rows`` above it."""
        if not np.isfinite(row).all():
            raise self.E(f"non-finite Supercell row {_short(text)!r}", self.lines.lineno, "Supercell")
        if not row.any():
            raise self.E("Supercell row is zero (a periodic direction needs a lattice vector)",
                         self.lines.lineno, "Supercell")
        if rows:
            m = np.vstack([*rows, row])
            gram = np.linalg.det(m @ m.T)  # squared volume of the rows
            if not gram > 1e-12 * np.prod(np.einsum("ij,ij->i", m, m)):
                raise self.E(f"Supercell row {_short(text)!r} is (nearly) linearly dependent on the rows "
                             "above it (the cell has no volume)", self.lines.lineno, "Supercell")

    def _atom_data(self, rest, lineno) -> None:
        """``AtomData:`` with its column names, then exactly Size rows (taken
        as one block; converted in :meth:`build`)."""
        size = self.size
        if size is None:
            raise self.E("AtomData before Size (missing Size)", lineno, "Size")
        cols = rest.split() if rest is not None else []
        if not cols:
            raise self.E("AtomData: without column names", lineno, "AtomData")
        dup = [c for c in set(cols) if cols.count(c) > 1]
        if dup:
            raise self.E(f"duplicate AtomData column {dup[0]!r}", lineno, dup[0])
        lines = self.lines
        first = lines.lineno + 1
        rows = lines.take(size)
        self.atom_block = (lineno, cols, first, rows)
        _check_rows(self.atom_block, size, self.E)
        lines.lineno += len(rows)

    def _energy(self, rest, lineno) -> None:
        """``Energy``: one number (eV)."""
        t = self._value_line(rest, "Energy")
        try:
            self.energy = float(t)
        except ValueError:
            raise self.E(f"Energy must be one number, got {_short(t)!r}", self.lines.lineno,
                         "Energy") from None
        if not np.isfinite(self.energy):
            raise self.E(f"Energy must be a finite number, got {_short(t)!r}", self.lines.lineno, "Energy")

    def _plus_stress(self, rest, lineno, word="PlusStress:") -> None:
        """``PlusStress:``/``Virial:`` with the 6 component names in any order
        (default xx yy zz yz xz xy), then the 6 values (eV), stored in MLIP
        order; a Virial is divided by the volume in :meth:`build`."""
        names = rest.split() if rest is not None else list(_STRESS_NAMES)
        fld = word.rstrip(":")
        if sorted(names) != sorted(_STRESS_NAMES):
            raise self.E(f"{word} needs the 6 component names xx yy zz yz xz xy (any order), got "
                         f"{' '.join(names)!r}", lineno, fld)
        t = self._value_line(None, fld)
        try:
            vals = _strict_fromstring(t)
        except ValueError:
            raise self.E(f"non-numeric {fld} values {_short(t)!r}", self.lines.lineno,
                         fld) from None
        if vals.size != 6:
            raise self.E(f"{fld} needs 6 values, found {vals.size}", self.lines.lineno, fld)
        if not np.isfinite(vals).all():
            raise self.E(f"{fld} values must be finite numbers, got {_short(t)!r}", self.lines.lineno, fld)
        order = [names.index(n) for n in _STRESS_NAMES]
        vals = vals[order]
        if word == "PlusStress:":
            if self.virial is not None:
                raise self.E("both PlusStress and Virial given", lineno, fld)
            self.stress = vals
        else:
            if self.stress is not None:
                raise self.E("both PlusStress and Virial given", lineno, fld)
            self.virial = (vals, lineno)

    def _virial(self, rest, lineno) -> None:
        """``Virial:``: as ``PlusStress:`` (see :meth:`_plus_stress`)."""
        self._plus_stress(rest, lineno, "Virial:")

    def _old_stress(self, rest, lineno) -> None:
        """``Stress:`` (MLIP's old sign convention): rejected."""
        raise self.E("'Stress:' (old MLIP sign convention) is not supported; write "
                     "'PlusStress:' (= -dE/d(strain) in eV, ASE stress = -PlusStress/V)",
                     lineno, "Stress")

    def _feature(self, rest, lineno) -> None:
        """``Feature name value``: a repeated name has its values joined with ``\\n``."""
        kv = (rest if rest is not None else "").split(None, 1)
        if not kv:
            raise self.E("Feature without a name", lineno, "Feature")
        key = kv[0]
        value = kv[1] if len(kv) > 1 else ""
        features = self.features
        if key in features:
            features[key] = features[key] + "\n" + value
        else:
            features[key] = value

    def _nested_begin(self, rest, lineno) -> None:
        """``BEGIN_CFG`` before ``END_CFG``: rejected."""
        raise self.E(f"BEGIN_CFG inside a configuration (missing END_CFG of the configuration "
                     f"that begins on line {self.begin})", lineno, "END_CFG")

    def build(self) -> Configuration:
        """Check that ``Size`` (and AtomData for Size > 0) were given, build the
        cell/pbc from the Supercell rows, convert the AtomData block
        (:func:`_atoms_from_block`) and a Virial into PlusStress (/ |det(cell)|)."""
        end_line = self.lines.lineno
        size = self.size
        if size is None:
            raise self.E(f"configuration (line {self.begin}) has no Size", end_line, "Size")
        cell = np.zeros((3, 3))
        pbc = np.zeros(3, dtype=bool)
        for k, row in enumerate(self.cell_rows):
            cell[k] = row
            pbc[k] = True
        if self.atom_block is None:
            if size != 0:
                raise self.E(f"configuration (line {self.begin}) has Size = {size} but no AtomData",
                             end_line, "AtomData")
            positions = np.zeros((0, 3))
            types = np.zeros(0, dtype=np.int64)
            forces = None
            atom_data = {}
        else:
            positions, types, forces, atom_data = _atoms_from_block(self.atom_block, size, cell,
                                                                     self.have_cell, self.E)
        stress = self.stress
        if self.virial is not None:
            vol = abs(np.linalg.det(cell))
            if not vol > 0:
                raise self.E("Virial needs a 3-D periodic Supercell (it is divided by the cell "
                             "volume)", self.virial[1], "Virial")
            stress = self.virial[0] / vol
        return Configuration(positions=positions, types=types, cell=cell, pbc=pbc,
                             energy=self.energy, forces=forces, plus_stress=stress,
                             features=self.features, atom_data=atom_data)


# keyword → handler(block, rest of the keyword line or None, line number)
_KEYWORD_HANDLERS = {
    "Size": _CfgBlock._size,
    "Supercell": _CfgBlock._supercell,
    "AtomData:": _CfgBlock._atom_data,
    "Energy": _CfgBlock._energy,
    "PlusStress:": _CfgBlock._plus_stress,
    "Virial:": _CfgBlock._virial,
    "Stress:": _CfgBlock._old_stress,
    "Stress": _CfgBlock._old_stress,
    "Feature": _CfgBlock._feature,
    "BEGIN_CFG": _CfgBlock._nested_begin,
}


def _check_rows(block, size, E):
    """The AtomData rows: Size of them, numeric, one value per column."""
    hline, cols, first, rows = block
    ncol = len(cols)
    for k, r in enumerate(rows):
        toks = r.split()
        if not toks or toks[0] in _KEYWORDS or toks[0][0] not in _NUM_START:
            raise E(f"AtomData has {k} rows but Size = {size}", first + k, "AtomData")
        if len(toks) != ncol:
            raise E(f"AtomData row has {len(toks)} values, expected {ncol} ({' '.join(cols)})",
                    first + k, "AtomData")
    if len(rows) < size:
        raise E(f"AtomData has {len(rows)} rows but Size = {size} (end of file)",
                first + len(rows), "AtomData")


# the (x, y, z) column triples of AtomData
_CARTES = ("cartes_x", "cartes_y", "cartes_z")
_DIRECT = ("direct_x", "direct_y", "direct_z")
_FORCE = ("fx", "fy", "fz")


def _atoms_from_block(block, size, cell, have_cell, E):
    """Convert the AtomData block into (positions, types, forces, atom_data):
    ``id`` and ``type`` checked, ``cartes_*`` or ``direct_*`` positions, ``fx
    fy fz`` forces, every other column into ``atom_data``."""
    hline, cols, first, rows = block
    arr = _block_array(block, size, E)
    idx = {c: k for k, c in enumerate(cols)}
    used = set()
    types = _atom_ids_and_types(block, size, arr, idx, used, E)
    _check_finite_columns(block, arr, idx, E)
    positions = _atom_positions(hline, arr, idx, used, cell, have_cell, E)
    forces = _atom_forces(hline, arr, idx, used, E)
    atom_data = {}
    for k, c in enumerate(cols):
        if c in used:
            continue
        v = arr[:, k].copy()
        if c in _INT_COLUMNS:
            v = _integer_column(block, v, k, c, 0, E)
        atom_data[c] = v
    return positions, types, forces, atom_data


def _integer_column(block, v, k, name, minimum, E) -> np.ndarray:
    """Column ``k`` (``name``, values ``v``) as int64: integers from ``minimum`` to MLIP's largest int."""
    hline, cols, first, rows = block
    lo = -_MAX_INT - 1 if minimum is None else minimum
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~np.isfinite(v) | (v != np.round(v)) | (v < lo) | (v > _MAX_INT))
    if len(bad):
        r = bad[0]
        kind = "a non-negative integer" if minimum == 0 else "an integer"
        raise E(f"{name} must be {kind} (at most {_MAX_INT}), got {rows[r].split()[k]}", first + r, name)
    return v.astype(np.int64)


def _check_finite_columns(block, arr, idx, E) -> None:
    """The positions and forces (and ids) are finite numbers."""
    hline, cols, first, rows = block
    names = [c for c in ("id", *_CARTES, *_DIRECT, *_FORCE) if c in idx]
    sub = arr[:, [idx[c] for c in names]]
    bad = np.argwhere(~np.isfinite(sub))
    if len(bad):
        r, c = bad[0]
        raise E(f"{names[c]} must be a finite number, got {rows[r].split()[idx[names[c]]]}", first + r, names[c])


def _block_array(block, size, E) -> np.ndarray:
    """The AtomData rows as one (Size, ncol) float array (one fast parse of
    the whole block; on failure, the first non-numeric value is reported)."""
    hline, cols, first, rows = block
    ncol = len(cols)
    try:
        arr = _strict_fromstring(" ".join(rows))
        if arr.size != size * ncol:
            raise ValueError
    except ValueError:
        for k, r in enumerate(rows):
            for c, tok in zip(cols, r.split()):
                try:
                    ok = _strict_fromstring(tok).size == 1
                except ValueError:
                    ok = False
                if not ok:
                    raise E(f"non-numeric value {tok!r} in column {c}", first + k, c) from None
        raise E("could not parse AtomData", first, "AtomData") from None  # pragma: no cover (rows checked)
    return arr.reshape(size, ncol)


def _atom_ids_and_types(block, size, arr, idx, used, E) -> np.ndarray:
    """Check ``id`` (1..Size in order) and return the ``type`` column as
    int64 (non-negative integers; all 0 without the column)."""
    hline, cols, first, rows = block
    if "id" in idx:
        used.add("id")
        ids = arr[:, idx["id"]]
        bad = np.nonzero(ids != np.arange(1, size + 1))[0]
        if len(bad):
            k = bad[0]
            raise E(f"atom ids must be 1..{size} in order; row {k + 1} has id {ids[k]:g}",
                    first + k, "id")
    if "type" not in idx:
        return np.zeros(size, dtype=np.int64)
    used.add("type")
    return _integer_column(block, arr[:, idx["type"]], idx["type"], "type", 0, E)


def _atom_positions(hline, arr, idx, used, cell, have_cell, E) -> np.ndarray:
    """Cartesian positions (Å) from ``cartes_x/y/z``, or from fractional
    ``direct_x/y/z`` times the Supercell rows."""
    cart = [c in idx for c in _CARTES]
    direct = [c in idx for c in _DIRECT]
    if all(cart):
        positions = arr[:, [idx[c] for c in _CARTES]].copy()
        used.update(_CARTES)
        if any(direct):
            raise E("AtomData has both cartes_* and direct_* columns", hline, "AtomData")
        return positions
    if all(direct):
        if not have_cell:
            raise E("direct_x/y/z (fractional) coordinates need a Supercell", hline, "direct_x")
        frac = arr[:, [idx[c] for c in _DIRECT]]
        used.update(_DIRECT)
        return frac @ cell
    missing = [c for c, h in zip(_CARTES, cart) if not h]
    raise E("AtomData needs the columns cartes_x cartes_y cartes_z (or direct_x direct_y "
            f"direct_z); missing {missing[0]}", hline, missing[0])


def _atom_forces(hline, arr, idx, used, E):
    """Forces (eV/Å) from ``fx fy fz`` (all three or none; None without)."""
    fk = [c in idx for c in _FORCE]
    if all(fk):
        used.update(_FORCE)
        return arr[:, [idx[c] for c in _FORCE]].copy()
    if any(fk):
        miss = [c for c, h in zip(_FORCE, fk) if not h][0]
        raise E(f"AtomData has some of fx fy fz but not {miss}", hline, miss)
    return None


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------

_ATOM_HEADER = " AtomData:  id type       cartes_x      cartes_y      cartes_z"
_FORCE_HEADER = "           fx          fy          fz"
_STRESS_HEADER = " PlusStress:  xx          yy          zz          yz          xz          xy"
# rounded (MLIP default) formats of the extra per-atom columns: decimals
_EXTRA_DECIMALS = {"nbh_grades": 5}


def _fmt_lossless(a) -> list[str]:
    return ["%.16e" % v for v in np.asarray(a, dtype=float).ravel().tolist()]


def format_cfg(conf: Configuration, lossless: bool = True) -> str:
    """Text of one configuration (``BEGIN_CFG`` ... ``END_CFG`` + blank line)."""
    pos = np.asarray(conf.positions, dtype=float).reshape(-1, 3)
    n = len(pos)
    types = _checked_types(conf.types, n)
    out = ["BEGIN_CFG", " Size", f"    {n}"]
    pbc = np.asarray(conf.pbc, dtype=bool).reshape(3)
    cell = np.asarray(conf.cell, dtype=float).reshape(3, 3)
    if pbc.any():
        out.append(" Supercell")
        out.extend(_number_line(cell[k].tolist(), lossless, "Supercell") for k in range(3) if pbc[k])
    forces = None if conf.forces is None else np.asarray(conf.forces, dtype=float).reshape(n, 3)
    extra = _extra_columns(conf.atom_data, n)
    header = _ATOM_HEADER
    if forces is not None:
        header += _FORCE_HEADER
    for k, _ in extra:
        header += " " + k.rjust(16)
    out.append(header)
    out.extend((_atom_rows_lossless if lossless else _atom_rows_rounded)(pos, types, forces, extra))
    if conf.energy is not None:
        out.append(" Energy")
        out.append(_number_line([float(conf.energy)], lossless, "Energy"))
    if conf.plus_stress is not None:
        st = np.asarray(conf.plus_stress, dtype=float).reshape(-1)
        if st.shape != (6,):
            raise ConfigurationError(f"plus_stress must have 6 components, got {st.size}")
        out.append(_STRESS_HEADER)
        out.append(_number_line(st.tolist(), lossless, "PlusStress"))
    for k, v in conf.features.items():
        k = str(k)
        if not k or any(ch.isspace() for ch in k):
            raise ConfigurationError(f"feature name {k!r} must be a non-empty word")
        for part in str(v).split("\n"):
            out.append(f" Feature   {k}\t{part}")
    out.append("END_CFG")
    out.append("")
    return "\n".join(out) + "\n"


def _checked_types(types, n) -> np.ndarray:
    """The ``types`` as int64: one per atom, non-negative integers."""
    types = np.asarray(types).reshape(-1)
    if len(types) != n:
        raise ConfigurationError(f"{len(types)} types for {n} atoms")
    if (types < 0).any() or (np.asarray(types) != np.round(types)).any():
        raise ConfigurationError("types must be non-negative integers")
    return types.astype(np.int64)


def _extra_columns(atom_data: dict, n) -> list:
    """The extra AtomData columns as [(name, (N,) values)]: one value per
    atom, names without whitespace."""
    extra = [(k, np.asarray(v).reshape(-1)) for k, v in atom_data.items()]
    for k, v in extra:
        if len(v) != n:
            raise ConfigurationError(f"atom_data[{k!r}] has {len(v)} values for {n} atoms")
        if not k or any(ch.isspace() for ch in k):
            raise ConfigurationError(f"atom_data column name {k!r} must be a non-empty word")
    return extra


# the one-line number blocks: (block, lossless) -> (prefix, separator, format
# of each value); lossless is "%.16e" (17 significant digits), the rounded
# formats are MLIP's defaults
_LINE_FORMATS = {
    ("Supercell", True): ("    ", " ", "%.16e"),
    ("Supercell", False): ("    ", " ", "%13.6f"),
    ("Energy", True): ("    ", "", "%.16e"),
    ("Energy", False): ("     ", "", "%19.12f"),
    ("PlusStress", True): ("     ", " ", "%.16e"),
    ("PlusStress", False): ("    ", "", " %11.5f"),
}


def _number_line(values: list, lossless: bool, block: str) -> str:
    """One Supercell row, the Energy value or the PlusStress values (a list
    of floats) in the layout of :data:`_LINE_FORMATS`."""
    prefix, sep, fmt = _LINE_FORMATS[block, lossless]
    return prefix + sep.join([fmt % v for v in values])


def _atom_rows_lossless(pos, types, forces, extra) -> list[str]:
    """The AtomData rows with every float as ``%.16e`` (integer extra columns as integers)."""
    n = len(pos)
    pstr = np.array(_fmt_lossless(pos), dtype=object).reshape(n, 3)
    fstr = None if forces is None else np.array(_fmt_lossless(forces), dtype=object).reshape(n, 3)
    estr = [_fmt_lossless(v) if v.dtype.kind == "f" else [str(int(x)) for x in v.tolist()]
            for _, v in extra]
    out = []
    for i in range(n):
        row = "    %d %d  %s %s %s" % (i + 1, types[i], *pstr[i])
        if fstr is not None:
            row += "  %s %s %s" % tuple(fstr[i])
        for e in estr:
            row += "  " + e[i]
        out.append(row)
    return out


def _atom_rows_rounded(pos, types, forces, extra) -> list[str]:
    """The AtomData rows in MLIP's default rounded layout (positions/forces 6
    decimals, extra columns :data:`_EXTRA_DECIMALS` or 6, integers as ``%15d``)."""
    efmt = []
    for k, v in extra:
        if v.dtype.kind in "iub":
            efmt.append("  %15d")
        else:
            efmt.append("  %%15.%df" % _EXTRA_DECIMALS.get(k, 6))
    fl_pos = pos.tolist()
    fl_f = None if forces is None else forces.tolist()
    ex = [v.tolist() for _, v in extra]
    tl = types.tolist()
    out = []
    for i in range(len(pos)):
        row = "%14d %4d  %13.6f %13.6f %13.6f" % (i + 1, tl[i], *fl_pos[i])
        if fl_f is not None:
            row += "  %11.6f %11.6f %11.6f" % tuple(fl_f[i])
        for f, e in zip(efmt, ex):
            row += f % e[i]
        out.append(row)
    return out


def write_cfg(dest, configs, lossless: bool = True, append: bool = False) -> None:
    """Write configurations in MLIP's ``.cfg`` layout.

    ``dest``: a path or a text file object; ``configs``: one
    :class:`Configuration` or an iterable of them. ``lossless=True`` writes
    every float as ``%.16e`` (17 significant digits, the layout of MLIP's
    lossless build; exact for float64). ``lossless=False`` mimics MLIP's
    default rounded output (lattice/positions/forces 6 decimals, energy 12,
    PlusStress 5, ``nbh_grades`` 5, other extra columns 6).
    ``append=True`` appends to an existing file (path only).

    Only the periodic rows of ``cell`` (``pbc`` True) are written, in order;
    MLIP reads 1-3 rows as the first 1-3 lattice vectors, so a configuration
    periodic along e.g. y and z only comes back with those vectors as rows 0
    and 1 (same geometry, different row index). Feature values holding
    ``\n`` are written as repeated ``Feature`` lines (read back joined).
    Positions are always written as ``cartes_x/y/z``.
    """
    if isinstance(configs, Configuration):
        configs = [configs]
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "a" if append else "w", encoding="utf-8", newline="") as f:
            for c in configs:
                f.write(format_cfg(c, lossless=lossless))
        return
    with _open_text(dest, "w") as (f, _name):
        for c in configs:
            f.write(format_cfg(c, lossless=lossless))
