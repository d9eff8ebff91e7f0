"""``eqlens simulate``: write a simulated data set in the DeepLense folder layout."""

from __future__ import annotations


def register(subparsers) -> None:
    from ..simulation import config_names

    p = subparsers.add_parser("simulate", help="simulate lenses into DIR/<class>/<class>_sim_<n>.npy")
    p.add_argument("--config", default="model_i", help=f"one of: {', '.join(config_names())}")
    p.add_argument("--n-per-class", type=int, required=True, help="images per class")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--batch-size", type=int, default=16, help="images per simulator call (CPU: 8-16; GPU: 1024+)")
    p.add_argument("--float64", action="store_true", help="simulate in float64")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..errors import DataError
    from ..simulation import get_config, write_deeplense_folder

    config = get_config(args.config)
    if args.n_per_class < 0 or args.batch_size < 1:
        raise DataError("--n-per-class must be >= 0 and --batch-size >= 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise DataError(f"--device {args.device}: CUDA is not available on this machine")
    written = write_deeplense_folder(
        config,
        args.out,
        args.n_per_class,
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress,
        batch_size=args.batch_size,
        dtype=torch.float64 if args.float64 else torch.float32,
    )
    print(f"wrote {sum(written.values())} images to {args.out}: " + ", ".join(f"{k} {v}" for k, v in written.items()))
    return 0
