"""``eqlens models``: list the registry (name, group use, invariance, parameters) and the named variants."""

from __future__ import annotations


def register(subparsers) -> None:
    from ..groups import DEFAULT_GROUP
    from . import argtypes as arg

    p = subparsers.add_parser("models", help="list the registered models")
    p.add_argument("--num-classes", type=arg.CLASSES, default=3)
    p.add_argument("--image-size", type=arg.IMAGE_SIZE, default=129)
    p.add_argument("--group", default=DEFAULT_GROUP)
    p.add_argument("--no-params", action="store_true", help="skip building models to count parameters")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import models

    print(f"{'name':<12} {'group':<6} {'invariant':<10} {'params':>10}  description")
    for name in models.names():
        s = models.spec(name)
        params = ""
        if not args.no_params:
            size = args.image_size if s.min_image_size <= args.image_size else s.min_image_size
            net = models.create(name, num_classes=args.num_classes, group=args.group, image_size=size)
            params = f"{models.count_parameters(net):,}"
        group = args.group if s.uses_group else "-"
        print(f"{name:<12} {group:<6} {str(s.invariant):<10} {params:>10}  {s.description}")
    print(f"\n{'variant':<20} {'model':<10} {'group':<6} {'params':>10}  description (every hyper-parameter pinned)")
    for name in models.variant_names():
        v = models.variant(name)
        params = ""
        if not args.no_params:
            size = max(args.image_size, models.spec(v.model).min_image_size)
            size += size % 2 == 0 and v.settings.get("lift_stride") == 2  # a stride-2 lifting layer takes odd sizes
            params = f"{models.count_parameters(models.create(name, num_classes=args.num_classes, image_size=size)):,}"
        print(f"{name:<20} {v.model:<10} {v.group or '-':<6} {params:>10}  {v.description}")
    return 0
