"""``eqlens shift``: score checkpoints on their test split and on named distribution shifts (docs/generalisation.md)."""

from __future__ import annotations


def register(subparsers) -> None:
    from ..experiments.generalisation import DEFAULT_ANGLES
    from ..experiments.shifts import shift_names
    from . import argtypes as arg

    p = subparsers.add_parser("shift", help="accuracy and AUC of checkpoints under shifted simulations and rotations")
    p.add_argument("checkpoints", nargs="+", help="checkpoint directories or .safetensors files")
    p.add_argument("--shifts", default="all", help=f"'all' or comma-separated: {', '.join(shift_names())}")
    p.add_argument("--size", type=arg.POSITIVE, default=1000, help="test images per shift")
    p.add_argument("--angles", default=",".join(str(a) for a in DEFAULT_ANGLES),
                   help="angles (deg) of the orientation shift, comma-separated")
    p.add_argument("--base", default=None,
                   help="simulation config to shift for checkpoints trained on a folder (e.g. model_i)")
    p.add_argument("--batch-size", type=arg.BATCH_SIZE, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None, help="write the full report here")
    p.add_argument("--markdown", default=None, help="write the tables here")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import EqlensError
    from ..experiments.generalisation import evaluate_shifts, markdown_report
    from ..experiments.shifts import parse_shifts
    from .reporting import emit_report

    try:
        angles = [float(a) for a in args.angles.split(",") if a.strip()]
        shifts = parse_shifts(args.shifts)
    except ValueError as err:
        raise EqlensError(f"{err}") from None
    report = evaluate_shifts(args.checkpoints, shifts, size=args.size, device=args.device,
                             batch_size=args.batch_size, angles=angles, base=args.base, progress_bar=True)
    emit_report(markdown_report(report), report, args.json, args.markdown)
    return 0
