"""One dataclass describes a training run: :class:`TrainConfig`. The CLI, the app and the bench
build one and hand it to :func:`eqlens.training.train`; the checkpoint stores it as plain data.

Defaults follow the EqCvT seed: Adam, lr 1e-4, betas (0.9, 0.999), weight decay 1e-7, constant lr,
40 epochs; 9000 training and 1000 validation images as there, plus 1000 held-out test images the
seed never had. Batch size 32 (the seed used 8 for EqCvT and 64 for CvT).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from numbers import Integral, Real
from pathlib import Path

from ..data.augment import AUGMENT_MODES
from ..data.transforms import MAX_CARD_IMAGE_SIZE, MAX_INPUT_SIZE
from ..errors import TrainingError
from ..groups import DEFAULT_GROUP, get_group
from .tasks import TASKS, is_regression

SCHEDULES = ("constant", "cosine")
# Ranges of the numeric settings, shared with the command line's argument types (eqlens.commands.argtypes).
MAX_LR = 10.0  # Adam steps of this size already destroy any model; 1e300 overflows the optimizer
MAX_WEIGHT_DECAY = 1.0
MAX_SEED = 2**63 - 1
MAX_BATCH_SIZE = 65536
MAX_WORKERS = 256
MAX_EPOCHS = 1_000_000
MAX_THREADS = 1024
MAX_IMAGE_SIZE = MAX_CARD_IMAGE_SIZE  # a model input side the card of the run can carry
CLASSIFICATION_SELECTION = ("val_accuracy", "val_auc", "val_loss")
REGRESSION_SELECTION = ("val_mse", "val_loss")  # the same ranking: val_loss is the standardised MSE
SELECTION_METRICS = CLASSIFICATION_SELECTION + ("val_mse",)
MAX_RECALIBRATE_BN = 1000  # training batches
MAX_STREAM_START = 2**39  # items: half the training stream (eqlens.data.simulated.STREAM_SIZE), the rest to draw
# Sizes that become allocations: a simulated split is rendered into memory (its bytes are checked against
# MAX_SPLIT_BYTES once the image size is known, eqlens.training.run_setup), and an epoch of steps is a loop.
MAX_SPLIT_SIZE = 10_000_000  # images of one simulated split (or of the robustness report)
MAX_SPLIT_BYTES = 8 * 2**30  # the rendered float32 train, validation and test splits together
MAX_STEPS_PER_EPOCH = 1_000_000  # batches: 32 M images an epoch at the default batch size


def _setting(help: str, *, range: tuple | None = None, low_open: bool = False, choices: tuple | None = None,
             flag: str | None = None, metavar: str | None = None, cli: bool = True) -> dict:
    """A :class:`TrainConfig` field's metadata, from which the command line derives its flag
    (:mod:`eqlens.commands.config_flags`) and :meth:`TrainConfig.validate` its integer ranges.

    ``range=(low, high)``: the accepted values (``high=None``: no upper end; ``low_open``: ``low`` itself
    refused); ``flag``: a flag other than ``--field-name`` (a bool field's ``--no-...`` flag switches it
    off); ``cli=False``: no flag (the command sets it its own way, or not at all)."""
    return {"help": help, "range": range, "low_open": low_open, "choices": choices, "flag": flag,
            "metavar": metavar, "cli": cli}


def selection_metrics(task: str) -> tuple[str, ...]:
    """The ``select_on`` values a task accepts; the first is its default."""
    return REGRESSION_SELECTION if is_regression(task) else CLASSIFICATION_SELECTION


@dataclass
class TrainConfig:
    """Everything that determines a training run.

    ``data``: a simulation config name (``"model_i"``, ``"model_ii"``, ``"binary"``) or a DeepLense
    folder. ``train_size``/``val_size``/``test_size`` are the simulated split sizes; a folder is
    split by ``val_fraction``/``test_fraction`` unless it has its own splits (see
    :mod:`eqlens.data.splits`). ``data_seed`` fixes the images; ``seed`` fixes the model
    initialisation, shuffling and augmentation, so runs over several ``seed`` values see the same
    data. ``image_size=None``: the data's own size, minus one for models that need odd sizes to be
    exactly invariant. ``out=None`` writes no checkpoint. ``robustness_size``: test images given to
    the robustness report at the end (0: skip it).

    ``task``: ``"classification"`` or a regression target, ``"axion_mass"`` / ``"subhalo_mass"``
    (:mod:`eqlens.core.tasks`); the sizes then count lenses of the target's class.
    ``select_on=None``: the task's default, ``val_accuracy`` or (regression) ``val_mse``.

    ``augment``: random turns (and mirrors for D_N) of the training images; ``augment_mode``:
    ``"image"`` turns the pictures (bilinear, any data), ``"scene"`` turns simulated scenes and renders
    them, so turned training images keep the instrument's pixel noise, ``"mixed"`` renders turned scenes
    and resamples half of them by another angle (:mod:`eqlens.data.augment`).

    ``init_from``: a checkpoint (directory or ``.safetensors``) of the same model whose weights start
    the run, all but the classifier when the number of classes differs (:mod:`eqlens.checkpoint.transfer`).
    ``steps_per_epoch=None``: an epoch is one pass over the training split; an int: every epoch takes
    exactly that many batches, drawing fresh permutations of the split as often as needed (with 30, a
    few-shot set of 9 images is validated every 30 steps rather than after every step).

    ``crop``: the native central crop (pixels of the data's own images) taken before any resizing,
    e.g. 81 of Model I's 150 keeps the Einstein ring at the instrument's resolution; recorded in the
    card's ``input`` and applied by evaluation and the app alike. ``fresh_data`` (simulated data,
    with ``steps_per_epoch``): every epoch draws new lenses from the training stream, so a long run
    never sees an image twice; validation and test stay the fixed, disjoint streams. ``stream_start``:
    the stream item the run's first batch starts at (0: the stream's beginning), so that a fine-tune
    of a fresh-data checkpoint draws lenses its campaign never used.
    ``time_budget_min``: this call trains whole epochs while the next one still fits in that many
    minutes (measured), then stops with its state written, to be continued with ``resume``; a
    budget too small for one epoch is refused before anything is written. ``threads``: torch's CPU
    threads for this run (None: torch's default). ``recalibrate_bn=K``: before each validation, the
    batch-norm statistics are recomputed from K training batches with the epoch's final weights
    ("precise BN"; the running averages lag weights that move fast, see docs/training.md); 0: off.
    """

    model: str = field(metadata=_setting(
        "a registered model name (see `eqlens models`)"))
    group: str = field(default=DEFAULT_GROUP, metadata=_setting(
        f"symmetry group: C4, C8, D4, D8 (default: {DEFAULT_GROUP})"))
    data: str = field(default="model_i", metadata=_setting(
        "simulation config (model_i, model_ii, binary) or a DeepLense folder"))
    task: str = field(default="classification", metadata=_setting(
        "classify, or regress log10 axion mass (axion lenses) / log10 total subhalo mass (cdm lenses)",
        choices=TASKS))
    out: str | None = field(default=None, metadata=_setting(
        "checkpoint directory (default: checkpoints/<model>); one that is not empty is refused unless --resume "
        "or --overwrite says what to do with it"))
    epochs: int = field(default=40, metadata=_setting("training epochs", range=(1, MAX_EPOCHS)))
    batch_size: int = field(default=32, metadata=_setting("training batch size", range=(1, MAX_BATCH_SIZE)))
    lr: float = field(default=1e-4, metadata=_setting("Adam's learning rate", range=(0.0, MAX_LR), low_open=True))
    weight_decay: float = field(default=1e-7, metadata=_setting("Adam's weight decay",
                                                                range=(0.0, MAX_WEIGHT_DECAY)))
    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata=_setting("Adam's betas", cli=False))
    schedule: str = field(default="constant", metadata=_setting("learning-rate schedule", choices=SCHEDULES))
    select_on: str | None = field(default=None, metadata=_setting(
        "validation metric that picks the best epoch (default: val_accuracy; regression: val_mse)",
        choices=SELECTION_METRICS))
    image_size: int | None = field(default=None, metadata=_setting(
        "model input size (default: the data's, minus one for models needing odd sizes)", range=(1, MAX_IMAGE_SIZE)))
    seed: int = field(default=0, metadata=_setting("initialisation, shuffling, augmentation", range=(0, MAX_SEED)))
    data_seed: int = field(default=0, metadata=_setting("which simulated images", range=(0, MAX_SEED)))
    device: str = field(default="auto", metadata=_setting("auto, cpu, cuda, cuda:1, ..."))
    amp: bool = field(default=False, metadata=_setting("bfloat16 autocast on CUDA"))
    train_size: int = field(default=9000, metadata=_setting("simulated training images", range=(1, MAX_SPLIT_SIZE)))
    val_size: int = field(default=1000, metadata=_setting("simulated validation images", range=(1, MAX_SPLIT_SIZE)))
    test_size: int = field(default=1000, metadata=_setting("simulated test images", range=(0, MAX_SPLIT_SIZE)))
    val_fraction: float = field(default=0.1, metadata=_setting("a folder's share carved out for validation",
                                                               cli=False))
    test_fraction: float = field(default=0.1, metadata=_setting("a folder's share carved out for testing",
                                                                cli=False))
    augment: bool = field(default=True, metadata=_setting("no random rotations/flips", flag="--no-augment"))
    augment_mode: str = field(default="image", metadata=_setting(
        "turn the pictures (image, any data) or the simulated scenes, rendered at each angle (scene: no "
        "resampling, simulated data only), or render turned scenes and resample half of them once more (mixed)",
        choices=AUGMENT_MODES))
    circular_mask: bool = field(default=True, metadata=_setting("no circular input mask (train and test alike)",
                                                                flag="--no-mask"))
    resume: bool = field(default=False, metadata=_setting("continue from OUT/last if it exists"))
    workers: int = field(default=0, metadata=_setting("DataLoader workers for folders", range=(0, MAX_WORKERS)))
    eval_batch_size: int = field(default=64, metadata=_setting("batch size of validation and test",
                                                               range=(1, MAX_BATCH_SIZE), cli=False))
    robustness_size: int = field(default=64, metadata=_setting("test images for the final robustness report (0: skip)",
                                                               range=(0, MAX_SPLIT_SIZE)))
    model_kwargs: dict = field(default_factory=dict, metadata=_setting(
        "the builder's hyper-parameters (the command line takes them as a JSON object)", cli=False))
    init_from: str | None = field(default=None, metadata=_setting(
        "fine-tune: start from this checkpoint's weights (all but the classifier when the classes differ); model, "
        "group, architecture and image size default to its own", metavar="CKPT"))
    steps_per_epoch: int | None = field(default=None, metadata=_setting(
        "batches per epoch, cycling through the training set as often as needed (default: one pass); validation "
        "and checkpoints follow every epoch", range=(1, MAX_STEPS_PER_EPOCH), metavar="N"))
    crop: int | None = field(default=None, metadata=_setting(
        "native central crop of the data's images before any resizing (e.g. 81 of Model I's 150: the Einstein ring "
        "at full resolution); recorded in the card, used by evaluate and the app", range=(1, MAX_INPUT_SIZE),
        metavar="PX"))
    fresh_data: bool = field(default=False, metadata=_setting(
        "simulated data: every epoch draws new lenses (never the same image twice); needs --steps-per-epoch"))
    stream_start: int = field(default=0, metadata=_setting(
        "fresh data: the first item of the training stream this run draws (a fine-tune of a campaign's checkpoint "
        "starts after the lenses the campaign used, e.g. its images_seen)", range=(0, MAX_STREAM_START),
        metavar="ITEM"))
    time_budget_min: float | None = field(default=None, metadata=_setting(
        "time budget of this call in minutes (the command line: --minutes or --hours)", cli=False))
    threads: int | None = field(default=None, metadata=_setting("torch CPU threads (default: torch's choice)",
                                                                range=(1, MAX_THREADS)))
    recalibrate_bn: int = field(default=0, metadata=_setting(
        "before each validation, recompute batch-norm statistics from K training batches with the epoch's weights "
        "('precise BN'; may be switched on when resuming); 0: off", range=(0, MAX_RECALIBRATE_BN), metavar="K"))

    def __post_init__(self) -> None:
        try:
            self.betas = tuple(float(b) for b in self.betas)
        except (TypeError, ValueError):
            raise TrainingError(f"betas must be two numbers in [0, 1), got {self.betas!r}") from None
        if self.init_from is not None:
            self.init_from = str(self.init_from)  # a Path too; the record is plain JSON
        if isinstance(self.steps_per_epoch, Integral) and not isinstance(self.steps_per_epoch, bool):
            self.steps_per_epoch = int(self.steps_per_epoch)
        if self.select_on is None and self.task in TASKS:
            self.select_on = selection_metrics(self.task)[0]
        self.validate()

    def validate(self) -> None:
        """Raise :class:`TrainingError` naming the first bad setting (type or range)."""
        counts = {f.name: f.metadata["range"] for f in fields(self) if f.type == "int" and f.metadata.get("range")}
        for name, (low, high) in counts.items():
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool):
                raise TrainingError(f"{name} must be an integer, got {value!r}")
            if value < low:
                raise TrainingError(f"{name} must be at least {low}, got {value}" if low else
                                    f"{name} must not be negative, got {value}")
            if high is not None and value > high:
                raise TrainingError(f"{name} must be at most {high}, got {value}")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                raise TrainingError(f"{name} must be a finite number, got {value!r}")
        if not 0 < self.lr <= MAX_LR:
            raise TrainingError(f"lr must be positive and at most {MAX_LR:g}, got {self.lr}")
        if not 0 <= self.weight_decay <= MAX_WEIGHT_DECAY:
            raise TrainingError(f"weight_decay must be in [0, {MAX_WEIGHT_DECAY:g}], got {self.weight_decay}")
        try:
            get_group(self.group)
        except ValueError as err:
            raise TrainingError(str(err)) from None
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise TrainingError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.schedule not in SCHEDULES:
            raise TrainingError(f"unknown schedule {self.schedule!r}; use one of {', '.join(SCHEDULES)}")
        if self.task not in TASKS:
            raise TrainingError(f"unknown task {self.task!r}; use one of {', '.join(TASKS)}")
        if self.select_on not in selection_metrics(self.task):
            raise TrainingError(f"select_on {self.select_on!r} does not fit the {self.task} task; use one of "
                                f"{', '.join(selection_metrics(self.task))}")
        size = self.image_size
        if size is not None and (not isinstance(size, Integral) or isinstance(size, bool)
                                 or not 1 <= size <= MAX_IMAGE_SIZE):
            raise TrainingError(f"image_size must be an integer in [1, {MAX_IMAGE_SIZE}] px or None, got {size!r}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value < 1:
                raise TrainingError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.augment_mode not in AUGMENT_MODES:
            raise TrainingError(f"unknown augment_mode {self.augment_mode!r}; use one of {', '.join(AUGMENT_MODES)}")
        steps = self.steps_per_epoch
        if steps is not None and (not isinstance(steps, Integral) or isinstance(steps, bool)
                                  or not 1 <= steps <= MAX_STEPS_PER_EPOCH):
            raise TrainingError(f"steps_per_epoch must be an integer in [1, {MAX_STEPS_PER_EPOCH:,}] or None, "
                                f"got {steps!r}")
        self._validate_init_from()
        self._validate_campaign()

    def _validate_campaign(self) -> None:
        for name in ("crop", "threads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, Integral) or isinstance(value, bool) or value < 1):
                raise TrainingError(f"{name} must be a positive integer or None, got {value!r}")
        if self.threads is not None and self.threads > MAX_THREADS:
            raise TrainingError(f"threads must be at most {MAX_THREADS}, got {self.threads}")
        if self.crop is not None and self.crop > MAX_INPUT_SIZE:
            raise TrainingError(f"crop must be at most {MAX_INPUT_SIZE} px, got {self.crop}")
        if self.stream_start and not self.fresh_data:
            raise TrainingError("stream_start walks the fresh-data stream; it needs fresh_data")
        if self.fresh_data and self.steps_per_epoch is None:
            raise TrainingError("fresh_data needs steps_per_epoch: an epoch of an endless stream has no natural end")
        budget = self.time_budget_min
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))
                                   or not math.isfinite(budget) or budget <= 0):
            raise TrainingError(f"time_budget_min must be a positive number of minutes, got {budget!r}")

    def _validate_init_from(self) -> None:
        if self.init_from is None:
            return
        if not str(self.init_from).strip():
            raise TrainingError("init_from must name a checkpoint, got an empty path")
        if self.out is not None and Path(self.out).resolve() == Path(self.init_from).resolve():
            raise TrainingError(f"out and init_from are both {self.out!r}: the run would overwrite the weights "
                                f"it starts from; write to another directory")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output; keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
