"""``mtpjax calc-efs``, ``level`` and ``init``: MLIP's commands on potentials."""
from __future__ import annotations

import argparse
import time

from mtpjax.errors import MTPJaxError
from mtpjax.io.cfg import read_cfg, write_cfg
from mtpjax.io.mtp import read_mtp
from mtpjax.potential import MTP, calc_efs as compute_efs


def calc_efs(argv) -> int:
    """``mtpjax calc-efs POT IN.cfg OUT.cfg``: energies, forces and stresses (as ``mlp calc-efs``)."""
    p = argparse.ArgumentParser(prog="mtpjax calc-efs", description="energies, forces and stresses → .cfg "
                                "(like mlp calc-efs)")
    p.add_argument("potential")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--rounded", action="store_true", help="MLIP's default rounded output instead of 16 digits")
    p.add_argument("--min-dist", type=float, default=0.5, help="refuse atoms closer than this (Å); default 0.5")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    f = read_mtp(args.potential)
    if not f.is_trained:
        raise MTPJaxError(f"{args.potential}: potential is untrained (no radial_coeffs / moment_coeffs)")
    model = MTP.from_mtpfile(f)
    configs = read_cfg(args.input)
    t0 = time.perf_counter()
    out = compute_efs(model, configs, min_distance=args.min_dist, source=str(args.input))
    write_cfg(args.output, out, lossless=not args.rounded)
    if not args.quiet:
        print(
            f"calc-efs: {len(out)} configurations, {sum(c.natoms for c in out)} atoms, "
            f"{time.perf_counter() - t0:.2f} s → {args.output}"
        )
    return 0


def level(argv) -> int:
    """``mtpjax level POT``: level, species, basis and parameter counts."""
    p = argparse.ArgumentParser(prog="mtpjax level", description="level, species and basis/parameter counts")
    p.add_argument("potential")
    args = p.parse_args(argv)
    f = read_mtp(args.potential)
    m = MTP.from_mtpfile(f)
    print(f"potential           {args.potential}")
    print(f"name                {f.potential_name or ''}")
    print(f"level               {m.level}")
    print(f"trained             {'yes' if f.is_trained else 'no'}")
    print(f"species             {len(m.species)}: {' '.join(str(s) for s in m.species)}")
    print(f"cutoff              {m.min_dist:g} .. {m.max_dist:g} Å (radial basis {m.radial_basis_size}, scaling {float(m.scaling):g})")
    print(f"radial functions    {m.radial_funcs_count}")
    print(f"basic moments       {m.program.n_basic}")
    print(f"moment slots        {m.program.alpha_moments_count} ({len(m.program.alpha_index_times)} contractions)")
    print(f"basis functions     {m.n_basis}")
    print(f"parameters          {m.n_params} (radial {m.radial_coeffs.size}, species {m.n_species}, moment {m.n_basis})")
    return 0


def init(argv) -> int:
    """``mtpjax init --level L --species ... OUT.mtp``: an untrained potential (no template file needed)."""
    p = argparse.ArgumentParser(prog="mtpjax init", description="write an untrained potential of a given level")
    p.add_argument("output", nargs="?")
    p.add_argument("--level", type=int, required=True, help="lev_max, even, 2..28")
    p.add_argument("--species", nargs="+", help="type labels (e.g. 0 1 2, or atomic numbers)")
    p.add_argument("--species-count", type=int, help="number of species (types 0..C-1) if --species not given")
    p.add_argument("--cutoff", type=float, default=5.0, help="max_dist in Å (default 5.0)")
    p.add_argument("--min-dist", type=float, default=2.0, help="min_dist in Å (default 2.0)")
    p.add_argument("--radial-basis-size", type=int, default=8)
    args = p.parse_args(argv)
    species = list(args.species or [])
    output = args.output
    if output is None and species and not species[-1].lstrip("-").isdigit():
        output = species.pop()  # `--species 3 15 16 OUT.mtp`
    if output is None:
        raise MTPJaxError("init: give the output file name (e.g. OUT.mtp)")
    try:
        species = [int(s) for s in species] if species else list(range(args.species_count or 1))
    except ValueError:
        raise MTPJaxError(f"init: --species takes integer type labels, got {species}") from None
    if not 0 < args.min_dist < args.cutoff:
        raise MTPJaxError(f"init: need 0 < --min-dist ({args.min_dist}) < --cutoff ({args.cutoff})")
    if args.radial_basis_size < 2:
        raise MTPJaxError("init: --radial-basis-size must be at least 2")
    try:
        m = MTP.from_level(
            args.level,
            species=species,
            cutoff=args.cutoff,
            min_dist=args.min_dist,
            radial_basis_size=args.radial_basis_size,
        )
    except ValueError as e:  # invalid level / species
        raise MTPJaxError(f"init: {e}") from None
    m.save(output, trained=False)
    print(
        f"init: level {args.level}, {len(species)} species, {m.n_basis} basis functions, "
        f"{m.n_params} parameters → {output}"
    )
    return 0
