"""``eqlens simulate``: write a simulated data set in the DeepLense folder layout."""

from __future__ import annotations


def register(subparsers) -> None:
    from ..simulation import config_names
    from . import argtypes as arg

    p = subparsers.add_parser("simulate", help="simulate lenses into DIR/<class>/<class>_sim_<n>.npy")
    p.add_argument("--config", default="model_i", help=f"one of: {', '.join(config_names())} (model_i draws the "
                   f"vortex as the recipe's 100 point masses, model_i_line as the closed-form line; model_i_tnfw draws "
                   f"model_i's CDM subhalos as truncated NFWs of the same masses)")
    p.add_argument("--n-per-class", type=arg.COUNT, required=True, help="images per class")
    p.add_argument("--out", required=True,
                   help="output folder (created); one that is not empty is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the simulated data set in OUT (its class folders of .npy files)")
    p.add_argument("--seed", type=arg.SEED, default=0,
                   help="folder stream N: lenses of no training, validation or test split of any data seed")
    p.add_argument("--split", choices=("train", "val", "test"), default=None,
                   help="write exactly this split's lenses of --data-seed instead (e.g. a test split as files)")
    p.add_argument("--data-seed", type=arg.SEED, default=0, help="with --split: whose split")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--batch-size", type=arg.BATCH_SIZE, default=16,
                   help="images per simulator call (CPU: 8-16; GPU: 1024+)")
    p.add_argument("--float64", action="store_true", help="simulate in float64")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..data.simulated import folder_stream_seed, split_seed
    from ..errors import DataError
    from ..simulation import get_config, write_deeplense_folder

    config = get_config(args.config)
    if args.n_per_class < 0 or args.batch_size < 1:
        raise DataError("--n-per-class must be >= 0 and --batch-size >= 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise DataError(f"--device {args.device}: CUDA is not available on this machine")
    if args.split is None:
        stream, described = folder_stream_seed(args.seed), f"folder stream {args.seed} (no split of any data seed)"
    else:
        stream = split_seed(args.data_seed, args.split)
        described = f"the {args.split} split of data seed {args.data_seed}"
    prepare_out(args.out, overwrite=args.overwrite)
    written = write_deeplense_folder(
        config,
        args.out,
        args.n_per_class,
        seed=stream,
        device=args.device,
        progress=not args.no_progress,
        batch_size=args.batch_size,
        dtype=torch.float64 if args.float64 else torch.float32,
    )
    form = "".join(f"; {f}" for f in (config.subhalo_form, config.vortex_form) if f)
    print(f"wrote {sum(written.values())} images to {args.out}: " + ", ".join(f"{k} {v}" for k, v in written.items())
          + f"; lenses of {described}, simulator seed {stream}; config {config.name}{form}")
    return 0


def prepare_out(out: str, *, overwrite: bool) -> None:
    """Refuse a non-empty ``out``: images of another simulation there would mix with these (a binary set
    written into a model_i folder reads as four classes). ``overwrite`` removes a previous simulated data
    set first (class folders holding only ``.npy`` files); anything else there is refused even then."""
    import itertools
    import shutil
    from pathlib import Path

    from ..errors import DataError

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise DataError(f"--out {out} is a file, not a folder")
    if not path.is_dir():
        return
    entries = list(itertools.islice(path.iterdir(), 1001))
    if not entries:
        return
    if not overwrite:
        raise DataError(f"--out {out} is not empty ({len(entries)}{'+' if len(entries) > 1000 else ''} entries): "
                        f"simulating into it would mix data sets; pass --overwrite to replace the simulated data "
                        f"in it, or choose another --out")
    entries = list(path.iterdir())
    foreign = next((e for e in entries if not _is_class_folder(e)), None)
    if foreign is not None:
        raise DataError(f"--overwrite replaces a simulated data set (class folders of .npy files), but {out} also "
                        f"holds {foreign.name!r}; choose an empty --out")
    for entry in entries:
        shutil.rmtree(entry)


def _is_class_folder(path) -> bool:
    if path.is_symlink() or not path.is_dir():
        return False
    return all(f.suffix == ".npy" and f.is_file() and not f.is_symlink() for f in path.iterdir())
