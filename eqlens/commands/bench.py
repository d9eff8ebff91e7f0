"""``eqlens bench``: train and test a list of models over seeds; write one markdown table."""

from __future__ import annotations


def register(subparsers) -> None:
    from ..training.config import SCHEDULES
    from . import argtypes as arg

    p = subparsers.add_parser("bench", help="benchmark models over seeds on the simulated data sets")
    p.add_argument("--models", default="cnn,gcnn,eqcvt,eqcvt_inv,cvt", help="comma-separated registered model names")
    p.add_argument("--data", default="binary,model_i", help="comma-separated simulation configs or folders")
    p.add_argument("--seeds", type=arg.POSITIVE, default=3, help="number of training seeds (0..N-1)")
    p.add_argument("--group", default="C4")
    p.add_argument("--task", default="classification", help="classification, axion_mass or subhalo_mass")
    p.add_argument("--epochs", type=arg.EPOCHS, default=40)
    p.add_argument("--batch-size", type=arg.BATCH_SIZE, default=32)
    p.add_argument("--lr", type=arg.LR, default=1e-4)
    p.add_argument("--schedule", choices=SCHEDULES, default="constant", help="learning-rate schedule")
    p.add_argument("--image-size", type=arg.IMAGE_SIZE, default=None)
    p.add_argument("--train-size", type=arg.POSITIVE, default=9000)
    p.add_argument("--val-size", type=arg.POSITIVE, default=1000)
    p.add_argument("--test-size", type=arg.COUNT, default=1000)
    p.add_argument("--robustness-size", type=arg.COUNT, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--augment-mode", choices=("image", "scene"), default="image",
                   help="turn the training pictures (image) or the simulated scenes, rendered at each angle (scene)")
    p.add_argument("--checkpoints", default=None, help="keep each run's checkpoint under this folder")
    p.add_argument("--resume", action="store_true",
                   help="with --checkpoints: a stopped bench goes on; finished runs are read back and tested "
                        "again, an interrupted run continues from its last epoch")
    p.add_argument("--out", default="bench.md", help="markdown file for the table")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import TrainingError
    from ..training.bench import aggregate_runs, format_table, run_bench
    from ..training.jsonio import atomic_write_bytes

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

    rows = run_bench(
        [m.strip() for m in args.models.split(",") if m.strip()],
        [d.strip() for d in args.data.split(",") if d.strip()],
        range(args.seeds), out_dir=args.checkpoints, progress_bar=True, on_run=report,
        group=args.group, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule=args.schedule,
        image_size=args.image_size,
        train_size=args.train_size, val_size=args.val_size, test_size=args.test_size,
        robustness_size=args.robustness_size, device=args.device, amp=args.amp, task=args.task,
        augment_mode=args.augment_mode, resume=args.resume,
    )
    table = format_table(rows, title="eqlens bench")
    atomic_write_bytes(args.out, table.encode())
    print(table)
    print(f"table written to {args.out}")
    return 0
