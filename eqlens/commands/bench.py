"""``eqlens bench`` (also ``eqlens compare-models``): train and test a list of models over seeds; write one
markdown table (:mod:`eqlens.experiments.model_comparison`)."""

from __future__ import annotations

# The TrainConfig settings a comparison shares between its runs (the flags of `eqlens train`, same defaults).
SHARED = ("group", "task", "epochs", "batch_size", "lr", "schedule", "image_size", "train_size", "val_size",
          "test_size", "robustness_size", "device", "amp", "augment_mode")


def register(subparsers) -> None:
    from . import argtypes as arg
    from .config_flags import add_config_flags

    p = subparsers.add_parser("bench", aliases=["compare-models"],
                              help="compare models over seeds on the simulated data sets (one markdown table)")
    p.add_argument("--models", default="cnn,gcnn,eqcvt,eqcvt_inv,cvt", help="comma-separated registered model names")
    p.add_argument("--data", default="binary,model_i", help="comma-separated simulation configs or folders")
    p.add_argument("--seeds", type=arg.POSITIVE, default=3, help="number of training seeds (0..N-1)")
    add_config_flags(p, SHARED)
    p.add_argument("--checkpoints", default=None, help="keep each run's checkpoint under this folder")
    p.add_argument("--resume", action="store_true",
                   help="with --checkpoints: a stopped bench goes on; finished runs are read back and tested "
                        "again, an interrupted run continues from its last epoch")
    p.add_argument("--out", default="bench.md", help="markdown file for the table")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..core.jsonio import atomic_write_bytes
    from ..errors import TrainingError
    from ..experiments.model_comparison import aggregate_runs, format_table, run_comparison
    from .config_flags import config_values

    if args.resume and not args.checkpoints:
        raise TrainingError("--resume needs --checkpoints: the folder the stopped bench kept its runs in")
    finished: dict[tuple[str, str], list[dict]] = {}

    def report(data, model, seed, r):
        scores = ", ".join(f"{k} {r[k]:.4f}" for k in ("accuracy", "auc_macro", "r2", "mae") if r.get(k) is not None)
        print(f"{data} {model} seed {seed}: test {scores}, {r['images_per_s']:.0f} img/s")
        # A long bench that is stopped keeps every finished run: the table so far, marked partial.
        finished.setdefault((data, model), []).append(r)
        partial = [aggregate_runs(d, m, runs) for (d, m), runs in finished.items()]
        atomic_write_bytes(args.out, format_table(partial, title="eqlens bench (partial: still running)").encode())

    rows = run_comparison(
        [m.strip() for m in args.models.split(",") if m.strip()],
        [d.strip() for d in args.data.split(",") if d.strip()],
        range(args.seeds), out_dir=args.checkpoints, progress_bar=True, on_run=report, resume=args.resume,
        **config_values(args, SHARED),
    )
    table = format_table(rows, title="eqlens bench")
    atomic_write_bytes(args.out, table.encode())
    print(table)
    print(f"table written to {args.out}")
    return 0
