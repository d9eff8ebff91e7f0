"""Errors a user can act on. Each names the file or the setting that caused it."""


class EqlensError(Exception):
    """Base of every error eqlens raises on purpose (bad input, not a bug)."""


class DataError(EqlensError, ValueError):
    """A dataset folder or image cannot be used: missing, empty, unknown layout, a pickle that is
    not the known ``[image, mass]`` form, NaN/inf pixels, wrong dimensions, not an image."""


class CheckpointError(EqlensError, ValueError):
    """A checkpoint is corrupt, truncated, foreign, or would need unpickling arbitrary objects."""


class TrainingError(EqlensError, RuntimeError):
    """Training cannot go on (NaN loss, out of memory, ...); the message says what to try."""
