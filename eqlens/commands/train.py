"""``eqlens train``: train a registered model and write a checkpoint directory (see docs/training.md)."""

from __future__ import annotations

from dataclasses import fields


def register(subparsers) -> None:
    from ..data.augment import AUGMENT_MODES
    from ..training.config import SCHEDULES, SELECTION_METRICS, TrainConfig
    from ..training.targets import TASKS
    from . import argtypes as arg

    defaults = {f.name: f.default for f in fields(TrainConfig) if f.name != "model_kwargs"}
    p = subparsers.add_parser("train", help="train a model; checkpoints every epoch, resumable")
    p.add_argument("--model", default=None,
                   help="a registered model name (see `eqlens models`); with --init-from: the checkpoint's")
    p.add_argument("--group", default=None,
                   help=f"symmetry group: C4, C8, D4, D8 (default: {defaults['group']}; "
                        f"with --init-from: the checkpoint's)")
    p.add_argument("--data", default=defaults["data"],
                   help="simulation config (model_i, model_ii, binary) or a DeepLense folder")
    p.add_argument("--task", choices=TASKS, default=defaults["task"],
                   help="classify, or regress log10 axion mass (axion lenses) / log10 total subhalo mass (cdm lenses)")
    p.add_argument("--out", default=None,
                   help="checkpoint directory (default: checkpoints/<model>); one that is not empty is refused "
                        "unless --resume or --overwrite says what to do with it")
    p.add_argument("--epochs", type=arg.EPOCHS, default=defaults["epochs"])
    p.add_argument("--batch-size", type=arg.BATCH_SIZE, default=defaults["batch_size"])
    p.add_argument("--lr", type=arg.LR, default=defaults["lr"])
    p.add_argument("--weight-decay", type=arg.WEIGHT_DECAY, default=defaults["weight_decay"])
    p.add_argument("--schedule", choices=SCHEDULES, default=defaults["schedule"])
    p.add_argument("--select-on", choices=SELECTION_METRICS, default=None,
                   help="validation metric that picks the best epoch (default: val_accuracy; regression: val_mse)")
    p.add_argument("--image-size", type=arg.IMAGE_SIZE, default=None,
                   help="model input size (default: the data's, minus one for models needing odd sizes; "
                        "with --init-from: the checkpoint's)")
    p.add_argument("--seed", type=arg.SEED, default=defaults["seed"], help="initialisation, shuffling, augmentation")
    p.add_argument("--data-seed", type=arg.SEED, default=defaults["data_seed"], help="which simulated images")
    p.add_argument("--device", default=defaults["device"], help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA")
    p.add_argument("--train-size", type=arg.POSITIVE, default=defaults["train_size"])
    p.add_argument("--val-size", type=arg.POSITIVE, default=defaults["val_size"])
    p.add_argument("--test-size", type=arg.COUNT, default=defaults["test_size"])
    p.add_argument("--no-augment", action="store_true", help="no random rotations/flips")
    p.add_argument("--augment-mode", choices=AUGMENT_MODES, default=defaults["augment_mode"],
                   help="turn the pictures (image, any data) or the simulated scenes, rendered at each angle "
                        "(scene: no resampling, simulated data only)")
    p.add_argument("--no-mask", action="store_true", help="no circular input mask (train and test alike)")
    p.add_argument("--robustness-size", type=arg.COUNT, default=defaults["robustness_size"],
                   help="test images for the final robustness report (0: skip)")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true", help="continue from OUT/last if it exists")
    existing.add_argument("--overwrite", action="store_true",
                          help="replace the checkpoint in OUT (its weights, card and last/) with this run's")
    p.add_argument("--init-from", default=None, metavar="CKPT",
                   help="fine-tune: start from this checkpoint's weights (all but the classifier when the "
                        "classes differ); model, group, architecture and image size default to its own")
    p.add_argument("--steps-per-epoch", type=arg.POSITIVE, default=None, metavar="N",
                   help="batches per epoch, cycling through the training set as often as needed "
                        "(default: one pass); validation and checkpoints follow every epoch")
    p.add_argument("--workers", type=arg.WORKERS, default=defaults["workers"], help="DataLoader workers for folders")
    p.add_argument("--crop", type=arg.CROP, default=None, metavar="PX",
                   help="native central crop of the data's images before any resizing (e.g. 81 of Model I's 150: "
                        "the Einstein ring at full resolution); recorded in the card, used by evaluate and the app")
    p.add_argument("--fresh-data", action="store_true",
                   help="simulated data: every epoch draws new lenses (never the same image twice); "
                        "needs --steps-per-epoch")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=arg.MINUTES, default=None,
                        help="time budget of this call: whole epochs while the next fits, then stop with the "
                             "state written (continue later with --resume)")
    budget.add_argument("--hours", type=arg.HOURS, default=None, help="the same budget in hours")
    p.add_argument("--model-kwargs", default=None, metavar="JSON",
                   help='the builder\'s hyper-parameters as a JSON object, e.g. \'{"widths": [8, 16, 32, 48]}\'')
    p.add_argument("--threads", type=arg.THREADS, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--recalibrate-bn", type=arg.integer(0, 1000), default=0, metavar="K",
                   help="before each validation, recompute batch-norm statistics from K training batches with the "
                        "epoch's weights ('precise BN'; may be switched on when resuming); 0: off")
    p.set_defaults(func=run)


def _architecture(args) -> dict:
    """``model``, ``group``, ``image_size`` and ``model_kwargs``: the flags given, the rest from the
    ``--init-from`` checkpoint's card (its architecture is what the weights fit)."""
    from ..errors import EqlensError
    from ..training.config import TrainConfig

    given = {"model": args.model, "group": args.group, "image_size": args.image_size}
    kwargs = _model_kwargs(args.model_kwargs)
    if args.init_from is None:
        if args.model is None:
            raise EqlensError("name a model with --model (or start from a checkpoint with --init-from)")
        return {**given, "group": args.group or TrainConfig.group, "model_kwargs": kwargs}
    from .. import checkpoint
    from ..checkpoint.transfer import architecture

    held = architecture(checkpoint.read_checkpoint(args.init_from)[1]["model"]["build_config"])
    chosen = {k: held[k] if v is None else v for k, v in given.items()}
    # Another model's kwargs would not build (or fit) the named model: the trainer then says why.
    return {**chosen, "model_kwargs": held["model_kwargs"] if chosen["model"] == held["model"] else {}}


def _model_kwargs(text: str | None) -> dict:
    """``--model-kwargs``: a JSON object (short, plain values), or {}."""
    import json

    from ..errors import EqlensError

    if text is None:
        return {}
    if len(text) > 2000:
        raise EqlensError("--model-kwargs is longer than 2000 characters")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise EqlensError(f"--model-kwargs is not JSON: {err}") from None
    if not isinstance(value, dict):
        raise EqlensError(f"--model-kwargs must be a JSON object, got {type(value).__name__}")
    return value


def config_from_args(args):
    from ..training.config import TrainConfig

    arch = _architecture(args)
    return TrainConfig(
        model=arch["model"], group=arch["group"], data=args.data, task=args.task,
        out=args.out or f"checkpoints/{arch['model']}",
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        schedule=args.schedule, select_on=args.select_on, image_size=arch["image_size"], seed=args.seed,
        data_seed=args.data_seed, device=args.device, amp=args.amp, train_size=args.train_size,
        val_size=args.val_size, test_size=args.test_size, augment=not args.no_augment,
        augment_mode=args.augment_mode,
        circular_mask=not args.no_mask, robustness_size=args.robustness_size, resume=args.resume,
        workers=args.workers, model_kwargs=arch["model_kwargs"], init_from=args.init_from,
        steps_per_epoch=args.steps_per_epoch, crop=args.crop, fresh_data=args.fresh_data,
        time_budget_min=args.minutes if args.hours is None else 60.0 * args.hours, threads=args.threads,
        recalibrate_bn=args.recalibrate_bn,
    )


def prepare_out(out: str, *, resume: bool, overwrite: bool, default: bool = False, main_rank: bool = True) -> None:
    """Refuse a non-empty ``out`` unless ``resume`` (continue the run in it) or ``overwrite`` (remove its
    checkpoint: weights, card, ``last/``; other files stay) says what to do with it: a run never silently
    replaces another's checkpoint. ``default``: ``out`` was not given (checkpoints/<model>). Only the main
    rank removes anything."""
    from pathlib import Path

    from .. import checkpoint
    from ..errors import EqlensError

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise EqlensError(f"--out {out} is a file, not a folder")
    if not path.is_dir() or next(path.iterdir(), None) is None:
        return
    ours = [checkpoint.WEIGHTS_FILE, checkpoint.CARD_FILE] + [checkpoint.LAST_DIR + s for s in ("", ".new", ".old")]
    if resume:
        if checkpoint.find_last(path) is None and (path / checkpoint.WEIGHTS_FILE).exists():
            raise EqlensError(f"--resume: {out} holds {_describe(path)} but no resume state ({checkpoint.LAST_DIR}/) "
                              f"to continue from; pass --overwrite to replace it, or choose another --out")
        return
    if not overwrite:
        given = "the default output folder " if default else "--out "
        raise EqlensError(f"{given}{out} is not empty (it holds {_describe(path)}): pass --resume to continue the run "
                          f"in it, --overwrite to replace it, or choose another --out")
    if main_rank:
        import shutil

        for name in ours:
            target = path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()


def _describe(path) -> str:
    """What a non-empty output folder holds, for messages: the model of its checkpoint, else a count."""
    import itertools
    import json

    from ..checkpoint import CARD_FILE

    try:
        card = json.loads((path / CARD_FILE).read_text())
        return f"a checkpoint of {card['model']['name']!s:.40} on {card['data']['spec']!s:.80}"
    except (OSError, ValueError, TypeError, KeyError):
        pass
    count = sum(1 for _ in itertools.islice(path.iterdir(), 1000))
    return f"{count}{'+' if count == 1000 else ''} entr{'y' if count == 1 else 'ies'}"


def _transfer_line(record: dict) -> str:
    skipped = ", ".join(f"{k} {tuple(a)} -> {tuple(b)}" for k, (a, b) in record["skipped"].items())
    return (f"initialised from {record['source']}: {record['loaded']} tensors copied"
            + (f"; re-initialised (class count differs): {skipped}" if skipped else ""))


def run(args) -> int:
    import os
    from math import nan

    from ..training.trainer import train

    config = config_from_args(args)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    prepare_out(config.out, resume=args.resume, overwrite=args.overwrite, default=args.out is None,
                main_rank=main_rank)
    result = train(config, progress_bar=True)
    if not main_rank:
        return 0
    val, test = result.val_metrics or {}, result.test_metrics or {}
    shown = ("mse", "mae", "r2") if "mse" in val else ("accuracy", "auc_macro")
    print(f"best epoch {result.best_epoch} (selected on {config.select_on}): "
          + ", ".join(f"val {k} {val.get(k, nan):.4f}" for k in shown))
    if test:
        inv = test.get("invariance_error")
        unit = f" {test['unit']}" if "unit" in test else ""
        print("test: " + ", ".join(f"{k} {test[k]:.4f}" for k in shown) + f", n {test['n']}"
              + (f", invariance error {inv:.3g}{unit}" if inv is not None else ""))
    if result.extra.get("transfer"):
        print(_transfer_line(result.extra["transfer"]))
    print(f"{result.images_per_s:.0f} img/s on {result.device}, {result.train_time_s:.1f} s training; "
          f"checkpoint: {result.checkpoint}")
    if result.budget_spent:
        print(f"time budget spent after epoch {result.history[-1]['epoch'] if result.history else 0} of "
              f"{config.epochs}: run the same command with --resume to go on")
    return 0
