"""The ``mtpjax`` command (MLIP-style sub-commands).

    mtpjax calc-efs POT.mtp IN.cfg OUT.cfg     energies, forces, stresses → .cfg
    mtpjax level POT.mtp                       level, species, basis and parameter counts
    mtpjax init --level 16 --species 3 15 16 --cutoff 5.0 OUT.mtp
    mtpjax analyze diffusion|rdf|gii|arrhenius ...

Errors in user input are printed as one line (``mtpjax: error: …``) with exit
status 2, never as a traceback; ``MTPJAX_DEBUG=1`` shows the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from .errors import MTPJaxError


def _cmd_calc_efs(args) -> int:
    from .potential import MTP, calc_efs, read_cfg, read_mtp, write_cfg

    f = read_mtp(args.potential)
    if not f.is_trained:
        raise MTPJaxError(f"{args.potential}: potential is untrained (no radial_coeffs / moment_coeffs)")
    model = MTP.from_mtpfile(f)
    configs = read_cfg(args.input)
    t0 = time.perf_counter()
    out = calc_efs(model, configs, min_distance=args.min_dist, source=str(args.input))
    write_cfg(args.output, out, lossless=not args.rounded)
    if not args.quiet:
        print(
            f"calc-efs: {len(out)} configurations, {sum(c.natoms for c in out)} atoms, "
            f"{time.perf_counter() - t0:.2f} s → {args.output}"
        )
    return 0


def _cmd_level(args) -> int:
    from .potential import MTP
    from .potential.mtp_file import read_mtp

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


def _cmd_init(args) -> int:
    from .potential import MTP

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtpjax", description="Moment Tensor Potentials in JAX (MLIP-compatible)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("calc-efs", help="compute energies, forces and stresses (like mlp calc-efs)")
    c.add_argument("potential")
    c.add_argument("input")
    c.add_argument("output")
    c.add_argument("--rounded", action="store_true", help="MLIP's default rounded output instead of 16 digits")
    c.add_argument("--min-dist", type=float, default=0.5, help="refuse atoms closer than this (Å); default 0.5")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=_cmd_calc_efs)

    c = sub.add_parser("level", help="print level, species and basis/parameter counts of a potential")
    c.add_argument("potential")
    c.set_defaults(func=_cmd_level)

    c = sub.add_parser("init", help="write an untrained potential of a given level (no template needed)")
    c.add_argument("output", nargs="?")
    c.add_argument("--level", type=int, required=True, help="lev_max, even, 2..28")
    c.add_argument("--species", nargs="+", help="type labels (e.g. 0 1 2, or atomic numbers)")
    c.add_argument("--species-count", type=int, help="number of species (types 0..C-1) if --species not given")
    c.add_argument("--cutoff", type=float, default=5.0, help="max_dist in Å (default 5.0)")
    c.add_argument("--min-dist", type=float, default=2.0, help="min_dist in Å (default 2.0)")
    c.add_argument("--radial-basis-size", type=int, default=8)
    c.set_defaults(func=_cmd_init)

    for name, (_, helptext) in EXTERNAL.items():
        c = sub.add_parser(name, help=helptext, add_help=False)
        c.add_argument("rest", nargs=argparse.REMAINDER)
        c.set_defaults(func=None)
    return p


#: sub-commands implemented in their own modules: name → (module, help).
#: Each module has ``main(argv: list[str]) -> int`` parsing its own options.
EXTERNAL = {
    "analyze": ("mtpjax.cli_analyze", "trajectory analysis: diffusion | rdf | gii | arrhenius"),
    "train": ("mtpjax.cli_train", "fit a potential to energies/forces/stresses (like mlp train)"),
    "md": ("mtpjax.cli_md", "molecular dynamics from a TOML run file"),
    "convert": ("mtpjax.cli_md", "convert H5MD trajectories to extxyz / LAMMPS dump"),
    "calc-grade": ("mtpjax.cli_active", "extrapolation grades (like mlp calc-grade)"),
    "select-add": ("mtpjax.cli_active", "D-optimal selection of new configurations (like mlp select-add)"),
    "learn": ("mtpjax.cli_active", "active learning on the fly from a TOML file"),
    "run": ("mtpjax.cli_workflow", "the paper's workflow end to end from a TOML file"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in EXTERNAL:
        import importlib

        modname = EXTERNAL[argv[0]][0]
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name != modname:
                raise
            print(f"mtpjax: error: command '{argv[0]}' is not available in this version", file=sys.stderr)
            return 2
        # modules serving several commands get the command name as argv[0]
        sub = argv if getattr(mod, "MULTI_COMMAND", False) else argv[1:]
        return _guard(lambda: mod.main(sub))
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    return _guard(lambda: args.func(args))


def _guard(fn) -> int:
    try:
        return int(fn() or 0)
    except (MTPJaxError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
        if os.environ.get("MTPJAX_DEBUG"):
            raise
        msg = str(e) if not isinstance(e, OSError) else f"{e.strerror}: {e.filename}"
        print(f"mtpjax: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
