"""The model registry and every model it holds.

``create(name, num_classes=..., group=..., image_size=..., **kw)``, ``names()``, ``variant_names()``
(named variants pinning every hyper-parameter: :mod:`eqlens.models.variants`); importing this package
registers all models and variants.
"""

from . import cnn, cvt, eqcvt, gcnn, gsa, resnet, vit  # noqa: F401  (registers models)
from .inspection import AttentionMap, AttentionRecorder, Inspection, LensModel, Tap, eval_mode
from .registry import (
    ModelSpec,
    averaged_turns,
    count_parameters,
    create,
    create_from_config,
    is_plain,
    names,
    register,
    spec,
)
from .variants import Variant, is_variant, matching_variant, variant, variant_names

__all__ = [
    "AttentionMap",
    "AttentionRecorder",
    "Inspection",
    "LensModel",
    "ModelSpec",
    "Tap",
    "Variant",
    "averaged_turns",
    "count_parameters",
    "eval_mode",
    "create",
    "create_from_config",
    "is_plain",
    "is_variant",
    "matching_variant",
    "names",
    "register",
    "spec",
    "variant",
    "variant_names",
]
