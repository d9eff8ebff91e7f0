"""``eqlens evaluate``: metrics of a checkpoint on a data split, optionally as JSON (docs/training.md)."""

from __future__ import annotations


def register(subparsers) -> None:
    from . import argtypes as arg
    p = subparsers.add_parser("evaluate", help="evaluate a checkpoint: accuracy, AUC, confusion (regression: MSE, "
                              "MAE, R^2), robustness")
    p.add_argument("checkpoint", help="checkpoint directory or .safetensors file")
    p.add_argument("--data", default=None, help="simulation config or DeepLense folder (default: the training data)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--size", type=arg.POSITIVE, default=None,
                   help="number of images (simulated: the first N of the split; folders: a seeded random N)")
    p.add_argument("--batch-size", type=arg.BATCH_SIZE, default=64)
    p.add_argument("--robustness-size", type=arg.COUNT, default=64, help="images for the robustness report (0: skip)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=arg.WORKERS, default=0)
    p.add_argument("--anatomy", action="store_true",
                   help="simulated data: the error rate by quantile of each scene parameter (subhalo mass near the "
                        "Einstein ring, vortex length, exposure, ...), per true class")
    p.add_argument("--json", default=None, help="write the full report (ROC, predictions, robustness) here")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..core.jsonio import write_json
    from ..evaluation.checkpoint import evaluate_checkpoint

    report = evaluate_checkpoint(args.checkpoint, args.data, split=args.split, size=args.size, device=args.device,
                                 batch_size=args.batch_size, robustness_size=args.robustness_size,
                                 workers=args.workers, anatomy=args.anatomy)
    print(f"{report['checkpoint']['model']} on {_data_line(report['data'])} [{args.split}], n = {report['n']}")
    if "mse" in report:
        _print_regression(report)
    else:
        _print_classification(report)
        if report.get("anatomy"):
            _print_anatomy(report["anatomy"])
    if args.json:
        write_json(args.json, report)
        print(f"report written to {args.json}")
    return 0


def _data_line(data: dict) -> str:
    """The data evaluated on, with how its subhalos and vortex are drawn for simulated data that has them
    (as ``eqlens simulate`` prints it)."""
    from ..simulation import SimulationConfig

    if not data.get("simulation_config"):
        return str(data["spec"])
    config = SimulationConfig.from_dict(data["simulation_config"])
    form = "; ".join(f for f in (config.subhalo_form, config.vortex_form) if f)
    return f"{data['spec']} ({form})" if form else str(data["spec"])


def _probe(robust: dict) -> str:
    """The group the exact measures turned by, named as the probe: a plain model has no group of its own."""
    return f"probe group {robust.get('group') or '?'}"


def _print_regression(report: dict) -> None:
    print(f"{report['target']} [{report['unit']}]: MSE {_fmt(report['mse'])}   MAE {_fmt(report['mae'])}   "
          f"R^2 {_fmt(report['r2'])}")
    if report["invariance_error"] is not None:
        robust = report["robustness"]
        print(f"invariance error {report['invariance_error']:.3g} (largest change under the exact rotations of "
              f"{_probe(robust)}), "
              f"worst-angle MAE {_fmt(robust['worst_angle_mae'])} (pictures resampled), "
              f"spread over angles {_fmt(robust['orbit_std'])}")
        if robust.get("sky"):
            sky = robust["sky"]
            print(f"turned sky (scenes rendered at each angle): worst-angle MAE {_fmt(sky['worst_angle_mae'])}, "
                  f"spread over angles {_fmt(sky['orbit_std'])}")


def _print_classification(report: dict) -> None:
    from ..analysis.equivariance import report_value

    print(f"accuracy {report['accuracy']:.4f}   macro AUC {_fmt(report['auc_macro'])}")
    for name, auc in report["per_class_auc"].items():
        print(f"  AUC {name:<10} {_fmt(auc)}")
    names = report["class_names"]
    print("confusion (rows true, columns predicted): " + " ".join(names))
    for name, row in zip(names, report["confusion"], strict=True):
        print(f"  {name:<10} " + " ".join(f"{v:>6d}" for v in row))
    if report["invariance_error"] is not None:
        robust = report["robustness"]
        print(f"invariance error {report['invariance_error']:.3g} ({_probe(robust)}), worst-angle accuracy "
              f"{_fmt(robust.get('worst_angle_accuracy'))} (pictures resampled), 8 x 45 deg logit std "
              f"{_fmt(report_value(robust, 'logit_std_8x45'))}")
        if robust.get("sky"):
            print(f"turned sky (scenes rendered at each angle): worst-angle accuracy "
                  f"{_fmt(robust['sky']['worst_angle_accuracy'])}, orbit consistency "
                  f"{_fmt(robust['sky']['orbit_consistency'])}")


def _print_anatomy(rows: list[dict]) -> None:
    """One line per (true class, scene parameter): the error rate of each quantile bin, lowest values first."""
    print("error rate by quantile of the scene (lowest values first; bin ranges in the parameter's unit):")
    lines: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        lines.setdefault((row["class_name"], row["feature"]), []).append(row)
    for (name, feature), bins in lines.items():
        cells = "  ".join(f"{b['low']:.3g}-{b['high']:.3g}: {b['error_rate']:.3f} ({b['errors']}/{b['lenses']})"
                          for b in bins)
        print(f"  {name:>8} {feature:<20} [{bins[0]['unit']}]  {cells}")


def _fmt(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.4f}"
