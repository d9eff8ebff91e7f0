"""What a model would cost, from its build configuration alone: nothing is built or allocated.

Every registered model states a cost function beside its builder (``register(..., cost=...)``), with
the builder's own signature: ``cost(num_classes, group, image_size, **hyper_parameters) -> ModelCost``.
It checks each hyper-parameter's type and range (a ``ValueError`` naming the field) and counts, by
the same arithmetic as the layers' shapes:

- ``parameters``: the trainable parameters, exactly :func:`eqlens.models.count_parameters` of the
  built model (the registry's tests compare them for every model);
- ``activation_floats``: the float32 values of the tensors one forward pass of one
  ``[1, 1, image_size, image_size]`` image creates, attention weights counted as materialised (as the
  app's attention capture and torch's CPU math path build them). An estimate within a small factor
  of what is measured (the tests bound the ratio), not an exact count.

:func:`eqlens.models.registry.create` refuses a configuration over :data:`MAX_PARAMETERS` or
:data:`MAX_ACTIVATION_BYTES` before calling the builder, so an untrusted card or ``--model-kwargs``
never allocates a model it could not afford. The helpers below are the one place a hyper-parameter's
type is checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

FLOAT_BYTES = 4
MAX_PARAMETERS = 20_000_000  # ResNet-18, the largest shipped family, has 11.2 M
MAX_ACTIVATION_BYTES = 2 * 2**30  # of one image's forward pass; the default models take 5-500 MB at 129 px
MAX_LAYERS = 64  # entries of a width list, blocks of a stage: each is a Python module built one by one
MAX_HYPER_PARAMETER = 2**20  # any single count (a width, a kernel, a stride): the budgets then decide


@dataclass(frozen=True)
class ModelCost:
    """``parameters`` (exact) and ``activation_floats`` (estimated) of one model configuration."""

    parameters: int
    activation_floats: int

    @property
    def activation_bytes(self) -> int:
        return self.activation_floats * FLOAT_BYTES

    def __add__(self, other: ModelCost) -> ModelCost:
        return ModelCost(self.parameters + other.parameters, self.activation_floats + other.activation_floats)

    def over_budget(self) -> str | None:
        """Why this cost is refused (parameters or activation memory over the budget), None within it."""
        if self.parameters > MAX_PARAMETERS:
            return f"{self.parameters:,} parameters, over the budget of {MAX_PARAMETERS:,}"
        if self.activation_bytes > MAX_ACTIVATION_BYTES:
            return (f"{_gib(self.activation_bytes)} of activations for one image, over the budget of "
                    f"{_gib(MAX_ACTIVATION_BYTES)}")
        return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB" if n < 2**30 * 1e6 else f"{float(n):.3g} bytes"


def short_repr(value) -> str:
    """``repr`` of a setting cut short for messages (an integer too long to print: its size in bits)."""
    try:
        text = repr(value)
    except ValueError:  # Python refuses to print integers of over 4300 digits
        return f"an integer of {value.bit_length()} bits" if isinstance(value, int) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def count(name: str, value, low: int = 1, high: int = MAX_HYPER_PARAMETER) -> int:
    """``value`` as an int in ``[low, high]``; ``ValueError`` naming ``name`` otherwise (a bool is no count)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {short_repr(value)}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {short_repr(value)}")
    return int(value)


def odd(name: str, value, low: int = 1, high: int = MAX_HYPER_PARAMETER) -> int:
    """:func:`count` that must also be odd (a kernel centred on its pixel, a symmetric stride)."""
    value = count(name, value, low, high)
    if value % 2 == 0:
        raise ValueError(f"{name} must be odd, got {value}")
    return value


def counts(name: str, values, low: int = 1, high: int = MAX_HYPER_PARAMETER, max_len: int = MAX_LAYERS
           ) -> tuple[int, ...]:
    """A list of 1 to ``max_len`` counts, each in ``[low, high]`` (``name[i]`` in messages)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a list of integers, got {short_repr(values)}")
    if not 1 <= len(values) <= max_len:
        raise ValueError(f"{name} must hold 1 to {max_len} entries, got {len(values)}")
    return tuple(count(f"{name}[{i}]", v, low, high) for i, v in enumerate(values))


def choice(name: str, value, options: tuple) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {short_repr(value)}")
    return value


def flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {short_repr(value)}")
    return value


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Side of a convolution's (or a pool's) output grid."""
    return (size + 2 * padding - kernel) // stride + 1
