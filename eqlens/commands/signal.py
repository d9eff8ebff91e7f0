"""``eqlens signal``: how far a lens image moves when the axion mass changes, against its noise
(the ideal observer's S/N; docs/regression_cpu.md)."""

from __future__ import annotations


def register(subparsers) -> None:
    from . import argtypes as arg
    p = subparsers.add_parser("signal", help="ideal-observer S/N of an axion-mass change (what regression can reach)")
    p.add_argument("--config", default="model_i", help="simulation config with an axion class (model_i: the vortex "
                   "as the recipe's 100 point masses; model_i_line: the closed-form line)")
    p.add_argument("--masses", default=None, help="log10 masses [eV], comma-separated (default: 9 over the range)")
    p.add_argument("--reference", type=float, default=None, help="log10 mass compared against (default: the heaviest)")
    p.add_argument("--n", type=arg.POSITIVE, default=64, help="axion scenes")
    p.add_argument("--seed", type=arg.SEED, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="write the rows here")
    p.add_argument("--markdown", default=None, help="write the table here")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import EqlensError
    from ..experiments.identifiability import axion_mass_signal, markdown_table, regression_r2_bound
    from .reporting import emit_report

    try:
        masses = None if args.masses is None else [float(m) for m in args.masses.split(",") if m.strip()]
    except ValueError as err:
        raise EqlensError(f"--masses: {err}") from None
    result = axion_mass_signal(args.config, masses, args.reference, n=args.n, seed=args.seed, device=args.device)
    result["r2_bound"] = regression_r2_bound(result)
    text = markdown_table(result) + (f"\n\nRough ceiling on regression R^2 over these masses (S/N < 3 taken as "
                                     f"indistinguishable): {result['r2_bound']:.2f}\n")
    emit_report(text, result, args.json, args.markdown)
    return 0
