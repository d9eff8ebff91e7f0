"""The model registry and every model it holds.

``create(name, num_classes=..., group=..., image_size=..., **kw)``, ``names()``; importing this
package registers all models.
"""

from . import cnn, cvt, eqcvt, gcnn, gsa, resnet, vit  # noqa: F401  (registers models)
from .inspection import AttentionMap, AttentionRecorder, Inspection, LensModel, Tap, eval_mode
from .registry import ModelSpec, count_parameters, create, create_from_config, is_plain, names, register, spec

__all__ = [
    "AttentionMap",
    "AttentionRecorder",
    "Inspection",
    "LensModel",
    "ModelSpec",
    "Tap",
    "count_parameters",
    "eval_mode",
    "create",
    "create_from_config",
    "is_plain",
    "names",
    "register",
    "spec",
]
