"""``eqlens train``: train a registered model and write a checkpoint directory (see docs/training.md)."""

from __future__ import annotations


def register(subparsers) -> None:
    from . import argtypes as arg
    from .config_flags import add_config_flags

    p = subparsers.add_parser("train", help="train a model; checkpoints every epoch, resumable")
    existing = p.add_mutually_exclusive_group()
    # model, group and image size: None until _architecture fills them in (from --init-from's card, if given)
    inherited = {name: "with --init-from: the checkpoint's" for name in ("model", "group", "image_size")}
    add_config_flags(p, unset=(*inherited, "out"), groups={"resume": existing}, notes=inherited)
    existing.add_argument("--overwrite", action="store_true",
                          help="replace the checkpoint in OUT (its weights, card and last/) with this run's")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=arg.MINUTES, default=None,
                        help="time budget of this call: whole epochs while the next fits, then stop with the "
                             "state written (continue later with --resume)")
    budget.add_argument("--hours", type=arg.HOURS, default=None, help="the same budget in hours")
    p.add_argument("--model-kwargs", default=None, metavar="JSON",
                   help='the builder\'s hyper-parameters as a JSON object, e.g. \'{"widths": [8, 16, 32, 48]}\'')
    p.add_argument("--config", default=None, metavar="RUN.toml",
                   help="train the run a run file describes (runs/*.toml; docs/training.md, 'Runs'), continuing it "
                        "where it stopped; only --hours/--minutes, --threads, --device and --out (reproduce a "
                        "finished run in another folder) go beside it")
    p.set_defaults(func=run, call_defaults=lambda: vars(p.parse_args([])))


def _architecture(args) -> dict:
    """``model``, ``group``, ``image_size`` and ``model_kwargs``: the flags given, the rest from the
    ``--init-from`` checkpoint's card (its architecture is what the weights fit). With ``--init-from``,
    ``--model-kwargs`` overrides single hyper-parameters of the card's (say gcnn's ``lift_stride``); one
    that changes a weight's shape is refused by the trainer, which copies only same-shaped tensors."""
    from ..errors import EqlensError
    from ..groups import DEFAULT_GROUP

    given = {"model": args.model, "group": args.group, "image_size": args.image_size}
    kwargs = _model_kwargs(args.model_kwargs)
    if args.init_from is None:
        if args.model is None:
            raise EqlensError("name a model with --model (or start from a checkpoint with --init-from)")
        return {**given, "group": args.group or DEFAULT_GROUP, "model_kwargs": kwargs}
    from .. import checkpoint
    from ..checkpoint.transfer import card_architecture

    held = card_architecture(checkpoint.read_checkpoint(args.init_from)[1])
    chosen = {k: held[k] if v is None else v for k, v in given.items()}
    # Another model's kwargs would not build (or fit) the named model: the trainer then says why.
    inherited = held["model_kwargs"] if chosen["model"] == held["model"] else {}
    return {**chosen, "model_kwargs": {**inherited, **kwargs}}


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
    from ..core.run_config import TrainConfig
    from .config_flags import config_values

    arch = _architecture(args)
    values = config_values(args)
    return TrainConfig(**{**values, **arch, "out": args.out or f"checkpoints/{arch['model']}",
                          "time_budget_min": args.minutes if args.hours is None else 60.0 * args.hours})


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

    from ..checkpoint import read_card
    from ..errors import CheckpointError

    try:
        card = read_card(path)
        return f"a checkpoint of {card.name!s:.40} on {card.data['spec']!s:.80}"
    except (KeyError, CheckpointError):
        pass
    count = sum(1 for _ in itertools.islice(path.iterdir(), 1000))
    return f"{count}{'+' if count == 1000 else ''} entr{'y' if count == 1 else 'ies'}"


def _transfer_line(record: dict) -> str:
    skipped = ", ".join(f"{k} {tuple(a)} -> {tuple(b)}" for k, (a, b) in record["skipped"].items())
    digest = f" (weights sha256 {record['source_sha256'][:12]})" if record.get("source_sha256") else ""
    return (f"initialised from {record['source']}{digest}: {record['loaded']} tensors copied"
            + (f"; re-initialised (class count differs): {skipped}" if skipped else ""))


_BESIDE_CONFIG = ("config", "minutes", "hours", "threads", "device", "out", "func", "call_defaults")


def run_file_config(args):
    """``(RunFile, TrainConfig)`` of ``--config``; :class:`EqlensError` for any run flag given beside it."""
    from ..errors import EqlensError
    from ..training import run_file

    defaults = args.call_defaults()
    given = sorted(k for k, v in vars(args).items() if k in defaults and k not in _BESIDE_CONFIG and defaults[k] != v)
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise EqlensError(f"--config takes the run from its file; {flags} would change it: edit the file instead")
    run = run_file.read_run_file(args.config)
    budget = args.minutes if args.hours is None else 60.0 * args.hours
    device = None if args.device == defaults.get("device") else args.device
    return run, run_file.train_config(run, time_budget_min=budget, threads=args.threads, device=device, out=args.out)


def run(args) -> int:
    import os
    import time
    from math import nan
    from pathlib import Path

    from ..training import ledger
    from ..training.trainer import train

    started = time.time()
    run_record = None
    if args.config is not None:
        run_record, config = run_file_config(args)
        resume, overwrite, default_out = True, False, False
    else:
        config = config_from_args(args)
        resume, overwrite, default_out = args.resume, args.overwrite, args.out is None
    main_rank = int(os.environ.get("RANK", "0")) == 0
    prepare_out(config.out, resume=resume, overwrite=overwrite, default=default_out, main_rank=main_rank)
    result = train(config, progress_bar=True)
    if not main_rank:
        return 0
    if run_record is not None:
        written = ledger.append(Path(run_record.path).parent, ledger.entry_for(run_record, config, result, started))
        print(f"ledger: {written}")
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
