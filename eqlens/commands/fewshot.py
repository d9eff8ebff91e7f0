"""``eqlens fewshot``: pretrain on two classes, fine-tune to a third from few examples (docs/generalisation.md)."""

from __future__ import annotations


def register(subparsers) -> None:
    from ..experiments.fewshot import FewShotConfig
    from . import argtypes as arg

    d = FewShotConfig.__dataclass_fields__
    p = subparsers.add_parser("fewshot", help="learn a class a model never saw from 10, 100, 1000 examples")
    p.add_argument("--models", default="gcnn,cnn", help="comma-separated registered model names")
    p.add_argument("--shots", default="10,100,1000", help="examples per class to fine-tune on, comma-separated")
    p.add_argument("--data", default=d["data"].default, help="the full simulation config (model_i, model_ii)")
    p.add_argument("--new-class", default=d["new_class"].default, help="the class left out of pretraining")
    p.add_argument("--group", default=d["group"].default)
    p.add_argument("--image-size", type=arg.IMAGE_SIZE, default=None)
    p.add_argument("--pretrain-epochs", type=arg.EPOCHS, default=d["pretrain_epochs"].default)
    p.add_argument("--train-size", type=arg.POSITIVE, default=d["train_size"].default, help="pretraining images")
    p.add_argument("--val-size", type=arg.POSITIVE, default=d["val_size"].default)
    p.add_argument("--test-size", type=arg.POSITIVE, default=d["test_size"].default,
                   help="held-out 3-class test images")
    p.add_argument("--batch-size", type=arg.BATCH_SIZE, default=d["batch_size"].default)
    p.add_argument("--lr", type=arg.LR, default=d["lr"].default, help="pretraining learning rate")
    p.add_argument("--finetune-steps", type=arg.POSITIVE, default=d["finetune_steps"].default)
    p.add_argument("--finetune-lr", type=arg.LR, default=d["finetune_lr"].default)
    p.add_argument("--seed", type=arg.SEED, default=d["seed"].default)
    p.add_argument("--data-seed", type=arg.SEED, default=d["data_seed"].default)
    p.add_argument("--device", default=d["device"].default)
    p.add_argument("--no-augment", action="store_true", help="no random rotations/flips in either phase")
    p.add_argument("--scratch", action="store_true", help="also train fresh 3-class models on the same examples")
    p.add_argument("--pretrained", default=None,
                   help="start from 2-class checkpoints instead of pretraining: model=PATH[,model=PATH]")
    p.add_argument("--out", default=None, help="keep the pretrained checkpoints in OUT/<model>")
    p.add_argument("--json", default=None, help="write the full report here")
    p.add_argument("--markdown", default=None, help="write the tables here")
    p.set_defaults(func=run)


def _pairs(text: str | None) -> dict[str, str]:
    from ..errors import EqlensError

    pairs = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise EqlensError(f"--pretrained expects model=PATH, got {item!r}")
        pairs[name.strip()] = path.strip()
    return pairs


def run(args) -> int:
    from ..errors import EqlensError
    from ..experiments.fewshot import FewShotConfig, markdown_report, run_fewshot
    from .reporting import emit_report

    try:
        shots = tuple(int(n) for n in args.shots.split(",") if n.strip())
    except ValueError:
        raise EqlensError(f"--shots expects comma-separated integers, got {args.shots!r}") from None
    config = FewShotConfig(
        models=tuple(m.strip() for m in args.models.split(",") if m.strip()), shots=shots, data=args.data,
        new_class=args.new_class, group=args.group, image_size=args.image_size, pretrain_epochs=args.pretrain_epochs,
        train_size=args.train_size, val_size=args.val_size, test_size=args.test_size, batch_size=args.batch_size,
        lr=args.lr, finetune_steps=args.finetune_steps, finetune_lr=args.finetune_lr, seed=args.seed,
        data_seed=args.data_seed, device=args.device, augment=not args.no_augment, scratch=args.scratch,
        out=args.out, pretrained=_pairs(args.pretrained),
    )
    report = run_fewshot(config, progress_bar=True)
    emit_report(markdown_report(report), report, args.json, args.markdown)
    return 0
