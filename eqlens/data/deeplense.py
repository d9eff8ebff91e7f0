"""DeepLense dataset folders, every layout in circulation, as one torch Dataset.

A *data root* is either

- a folder of **class folders** (``Model_I/{axion,cdm,no_sub}``, ``lenses/{no_sub,sub}``,
  ``dataset/train/{no,sphere,vort}`` or any other names), each holding ``.npy``, PNG, JPEG, TIFF or FITS
  files, the label being the folder; or
- a folder of **loose flat .npy files**, each a flat ``n*n`` image with its integer label appended.

A *split root* holds several data roots (``dataset/{train,val}``, ``{Model_I, Model_I_test}``); pick one
with ``split=``: a folder name (``"Model_I_test"``), or ``"train"`` / ``"val"`` / ``"test"``, which also
match ``training``, ``valid``/``validation``, ``testing`` and the DeepLense pair ``X`` (train) / ``X_test``
(test). A split root without ``split=`` raises :class:`DataError` listing the splits.

Class order comes from names, never from the file system: a known class set takes its canonical order
(:data:`CANONICAL_CLASS_ORDERS`), any other set is sorted in natural order; ``classes=`` overrides both.
Files within a class are in natural order (``sim_2`` before ``sim_10``). Names starting with ``.`` or
``__`` (``.DS_Store``, ``__MACOSX``) are ignored and counted in :meth:`DeepLenseFolderDataset.describe`;
any other unsupported file raises, so nothing is skipped silently.

Scanning looks at most two levels below the folder given (a split root's splits and their class folders),
never further. :func:`scan_limits` bounds a scan in entries seen and in seconds (the app sets both, so a
folder such as ``/usr`` is refused quickly instead of being walked); without it a scan is unbounded.

Every item goes through :func:`eqlens.data.transforms.prepare_batch`, the one normalisation (antialiased
bilinear resize to ``image_size``, then per-image min-max to [0, 1]). A bad file raises
:class:`DataError` naming it when it is read; :meth:`DeepLenseFolderDataset.validate` reads all up front.
"""

from __future__ import annotations

import contextvars
import os
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .images import MAX_CLASSES, SUPPORTED_SUFFIXES, DecodedImage, decode_image
from .transforms import center_crop, prepare_batch, resize_image

CANONICAL_CLASS_ORDERS: dict[str, tuple[str, ...]] = {
    "deeplense_model": ("axion", "cdm", "no_sub"),
    "binary": ("no_sub", "sub"),
    "common_test": ("no", "sphere", "vort"),
}

LAYOUTS: dict[str, str] = {
    "deeplense_model": "DeepLense Model I/II/III: class folders axion, cdm, no_sub of .npy (H, W) photon counts "
    "(150x150 Model I, 64x64 Models II/III); axion files hold the pair [image, axion_mass]",
    "common_test": "the older common test: class folders no, sphere, vort of (1, H, W) min-max normalised .npy",
    "binary": "the binary substructure set: class folders no_sub, sub of image files or .npy",
    "class_folders": "class folders with other names, of .npy or image files; classes in natural order",
    "flat_labeled": "loose .npy files, each a flat n*n image (row-major) with its integer label appended",
    "splits": "split folders (train/val/test or Model_X/Model_X_test), each one of the layouts above; "
    "choose one with split=",
}

_LAYOUT_BY_CLASS_SET = {frozenset(order): layout for layout, order in CANONICAL_CLASS_ORDERS.items()}
_SPLIT_ALIASES = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "testing")}
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key ordering digit runs by value: ``sim_2`` < ``sim_10``; ties broken by the plain name."""
    parts = tuple(int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(name))
    return parts, name


def class_order(names: Sequence[str]) -> tuple[str, ...]:
    """The canonical order of a known class set, else the names in natural order."""
    layout = _LAYOUT_BY_CLASS_SET.get(frozenset(names))
    return CANONICAL_CLASS_ORDERS[layout] if layout else tuple(sorted(names, key=natural_key))


@dataclass
class _Listing:
    """One folder's entries, each list in natural order."""

    folder: Path
    files: list[Path] = field(default_factory=list)
    subdirs: list[Path] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    unsupported: list[Path] = field(default_factory=list)


class ScanLimitError(DataError):
    """A folder scan went over the entries or seconds that :func:`scan_limits` allows."""


@dataclass
class _ScanBudget:
    max_entries: int
    deadline: float
    seconds: float
    seen: int = 0

    def charge(self, folder: Path) -> None:
        self.seen += 1
        if self.seen > self.max_entries:
            raise ScanLimitError(f"{folder}: the scan passed {self.max_entries} entries; not a DeepLense folder of a "
                            "size this limit allows (choose a folder holding one dataset)")
        if self.seen % 64 == 0:
            self.check_time(folder)

    def check_time(self, where: Path) -> None:
        if time.monotonic() > self.deadline:
            raise ScanLimitError(f"{where}: scanning took over {self.seconds:g} s; choose a folder holding one dataset")


_SCAN_BUDGET: contextvars.ContextVar[_ScanBudget | None] = contextvars.ContextVar("eqlens_scan_budget", default=None)


@contextmanager
def scan_limits(max_entries: int, seconds: float) -> Iterator[None]:
    """Within the block, every folder scan (and the label reads of loose files) together may see at most
    ``max_entries`` directory entries and take at most ``seconds``; beyond either a :class:`DataError` says
    so. Nested blocks share the outermost budget."""
    if _SCAN_BUDGET.get() is not None:
        yield
        return
    token = _SCAN_BUDGET.set(_ScanBudget(int(max_entries), time.monotonic() + float(seconds), float(seconds)))
    try:
        yield
    finally:
        _SCAN_BUDGET.reset(token)


def _charge_time(where: Path) -> None:
    budget = _SCAN_BUDGET.get()
    if budget is not None:
        budget.check_time(where)


def _is_ignored(name: str) -> bool:
    return name.startswith(".") or name.startswith("__")


def _entries(folder: Path) -> list[Path]:
    budget = _SCAN_BUDGET.get()
    if budget is None:
        return list(folder.iterdir())
    entries = []
    for entry in folder.iterdir():
        budget.charge(folder)
        entries.append(entry)
    return entries


def _list(folder: Path) -> _Listing:
    listing = _Listing(folder)
    for entry in sorted(_entries(folder), key=lambda p: natural_key(p.name)):
        if _is_ignored(entry.name):
            listing.ignored.append(entry)
        elif entry.is_dir():
            listing.subdirs.append(entry)
        elif entry.suffix.lower() in SUPPORTED_SUFFIXES:
            listing.files.append(entry)
        else:
            listing.unsupported.append(entry)
    return listing


def _folder_kind(folder: Path, allow_splits: bool = True) -> str:
    """``"classes"``, ``"loose"`` or (with ``allow_splits``) ``"splits"``; anything else raises (empty or
    unknown layout). A split's own kind is found with ``allow_splits=False``: no deeper walk."""
    listing = _list(folder)
    has_class_dirs = any(_list(sub).files for sub in listing.subdirs)
    if has_class_dirs and listing.files:
        raise DataError(f"{folder}: mixes loose files ({listing.files[0].name}, ...) with class folders")
    if has_class_dirs:
        return "classes"
    if listing.files:
        return "loose"
    if allow_splits and any(_data_kind_or_none(sub) for sub in listing.subdirs):
        return "splits"
    if not (listing.subdirs or listing.unsupported or listing.ignored):
        raise DataError(f"{folder}: the folder is empty")
    found = ", ".join(p.name + ("/" if p.is_dir() else "") for p in (listing.subdirs + listing.unsupported)[:5])
    raise DataError(
        f"{folder}: unknown layout; expected class folders of {'/'.join(SUPPORTED_SUFFIXES)} files, loose flat "
        f".npy files with labels, or split folders of those (found: {found or 'hidden files only'})"
    )


def _data_kind_or_none(folder: Path) -> str | None:
    try:
        return _folder_kind(folder, allow_splits=False)
    except ScanLimitError:
        raise
    except DataError:
        return None


def _require_folder(root: Path) -> None:
    if not root.exists():
        raise DataError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")


def list_splits(root: str | os.PathLike) -> tuple[str, ...]:
    """The split folder names of a split root (empty when ``root`` is itself a data root)."""
    root = Path(root)
    _require_folder(root)
    if _folder_kind(root) != "splits":
        return ()
    return tuple(sub.name for sub in _list(root).subdirs if _data_kind_or_none(sub))


def _find_split(root: Path, split: str) -> Path:
    names = list_splits(root)
    if split in names:
        return root / split
    wanted = split.lower()
    lower = {name.lower(): name for name in names}
    candidates = [lower[alias] for alias in _SPLIT_ALIASES.get(wanted, (wanted,)) if alias in lower]
    if wanted == "test":
        candidates += [name for name in names if name.lower().endswith("_test")]
    if wanted == "train":
        candidates += [name for name in names if name.lower() + "_test" in lower]
    candidates = list(dict.fromkeys(candidates))
    if len(candidates) == 1:
        return root / candidates[0]
    if not candidates:
        raise DataError(f"{root}: no split {split!r}; the splits are {list(names)}")
    raise DataError(f"{root}: split {split!r} is ambiguous among {candidates}; pass the folder name")


def _data_root(root: Path, split: str | None) -> tuple[Path, str]:
    """The data root and its kind (``"classes"`` or ``"loose"``) that ``root`` and ``split`` name."""
    _require_folder(root)
    kind = _folder_kind(root)
    if split is None:
        if kind == "splits":
            raise DataError(f"{root}: holds the splits {list(list_splits(root))}; pass split=<one of them>")
        return root, kind
    if kind != "splits":
        raise DataError(f"{root}: holds data directly, not split folders; leave split unset (got {split!r})")
    folder = _find_split(root, split)
    return folder, _folder_kind(folder)


def detect_layout(root: str | os.PathLike, split: str | None = None) -> str:
    """The :data:`LAYOUTS` key of ``root`` (of its ``split`` if given). Loose files are reported as
    ``flat_labeled`` without reading them; the dataset checks each file's label when it is built."""
    root = Path(root)
    _require_folder(root)
    if split is None and _folder_kind(root) == "splits":
        return "splits"
    folder, kind = _data_root(root, split)
    if kind == "loose":
        return "flat_labeled"
    names = [sub.name for sub in _list(folder).subdirs]
    return _LAYOUT_BY_CLASS_SET.get(frozenset(names), "class_folders")


class DeepLenseFolderDataset(Dataset):
    """A DeepLense folder as ``(image [1, S, S] float32, label int)`` items.

    ``S`` is ``image_size`` (antialiased bilinear resize, after the native central ``crop`` if given)
    or the file's own size (or the crop's). ``normalize=False`` skips
    the min-max step (resize only), for looking at raw counts. Rotating a file's image by 90 deg rotates the
    item by 90 deg exactly when ``image_size`` is None (resizing commutes with it up to float rounding).

    Attributes: ``root`` (the data root read), ``layout`` (a :data:`LAYOUTS` key), ``class_names``,
    ``files`` (paths, label by label, natural order within a label), ``labels``, ``ignored``."""

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int | None = None,
        classes: Sequence[str] | None = None,
        normalize: bool = True,
        *,
        split: str | None = None,
        crop: int | None = None,
    ):
        self.requested_root = Path(root)
        self.split = split
        self.root, kind = _data_root(self.requested_root, split)
        self.image_size = image_size
        self.crop = crop
        self.normalize = normalize
        self.ignored: list[Path] = []
        if kind == "classes":
            self._read_class_folders(classes)
        else:
            self._read_loose_files(classes)

    def _read_class_folders(self, classes: Sequence[str] | None) -> None:
        listing = _list(self.root)
        self.ignored += listing.ignored
        if listing.unsupported:
            raise DataError(f"{listing.unsupported[0]}: not a class folder or a supported data file")
        present = [sub.name for sub in listing.subdirs]
        self.layout = detect_layout(self.root)
        if classes is None:
            self.class_names = class_order(present)
        else:
            self.class_names = _checked_class_choice(classes, present, self.root)
        self.files, self.labels = [], []
        for label, name in enumerate(self.class_names):
            class_listing = _list(self.root / name)
            self.ignored += class_listing.ignored
            if class_listing.unsupported or class_listing.subdirs:
                stray = (class_listing.unsupported + class_listing.subdirs)[0]
                raise DataError(f"{stray}: not a supported data file (expected {', '.join(SUPPORTED_SUFFIXES)})")
            if not class_listing.files:
                raise DataError(f"{self.root / name}: class folder holds no data files")
            self.files += class_listing.files
            self.labels += [label] * len(class_listing.files)

    def _read_loose_files(self, classes: Sequence[str] | None) -> None:
        listing = _list(self.root)
        self.ignored += listing.ignored
        if listing.unsupported:
            raise DataError(f"{listing.unsupported[0]}: not a supported data file")
        self.layout = "flat_labeled"
        self.files = listing.files
        self.labels = []
        for path in self.files:
            _charge_time(self.root)
            self.labels.append(_appended_label(decode_image(path)))
        count = max(self.labels) + 1
        if classes is None:
            self.class_names = tuple(str(label) for label in range(count))
        elif len(classes) < count or len(set(classes)) != len(classes):
            raise DataError(f"{self.root}: labels go up to {count - 1}, so classes= needs {count} distinct names")
        else:
            self.class_names = tuple(classes)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(decode_image(self.files[index]).image).to(torch.float32)[None]  # [1, H, W]
        if self.normalize:
            return prepare_batch(image[None], self.image_size, self.crop)[0], self.labels[index]
        return resize_image(center_crop(image, self.crop), self.image_size), self.labels[index]

    def file_path(self, index: int) -> Path:
        return self.files[index]

    def extra(self, index: int) -> dict[str, float | int]:
        """Per-file side information: ``{"axion_mass": m}`` for axion pairs, ``{"appended_label": k}`` for
        flat labelled files, else ``{}``."""
        decoded = decode_image(self.files[index])
        info: dict[str, float | int] = {}
        if decoded.axion_mass is not None:
            info["axion_mass"] = decoded.axion_mass
        if decoded.label is not None:
            info["appended_label"] = decoded.label
        return info

    @property
    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.labels)
        return {name: counts[label] for label, name in enumerate(self.class_names)}

    def validate(self) -> dict[tuple[int, int], int]:
        """Read every file now; raise one :class:`DataError` naming every bad file (and, without
        ``image_size``, files whose sizes differ, which could not be batched). Returns shape -> count."""
        problems, shapes, first_of_shape = [], Counter(), {}
        for path in self.files:
            try:
                shape = decode_image(path).image.shape
            except DataError as err:
                problems.append(str(err))
                continue
            shapes[shape] += 1
            first_of_shape.setdefault(shape, path)
        if self.image_size is None and len(shapes) > 1:
            examples = ", ".join(f"{path.name} {h}x{w}" for (h, w), path in first_of_shape.items())
            problems.append(f"{self.root}: images differ in size ({examples}); pass image_size=")
        if problems:
            shown = "\n  ".join(problems[:10])
            more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
            raise DataError(f"{self.root}: {len(problems)} problem(s):\n  {shown}{more}")
        return dict(shapes)

    def describe(self) -> str:
        """A few lines for people: where, which layout, classes with counts, a sample file per class."""
        where = str(self.root) if self.split is None else f"{self.root} (split {self.split!r} of {self.requested_root})"
        lines = [
            f"DeepLense folder {where}",
            f"layout: {self.layout} - {LAYOUTS[self.layout]}",
            f"{len(self)} files in {len(self.class_names)} classes (label: name, files):",
        ]
        lines += [f"  {label}: {name}, {count}" for label, (name, count) in enumerate(self.class_counts.items())]
        lines.append("first file of each class:")
        for label in sorted(set(self.labels)):
            lines.append("  " + _sample_line(self.files[self.labels.index(label)]))
        size = "native size" if self.image_size is None else f"{self.image_size}x{self.image_size}"
        step = "resized (antialiased bilinear), then min-max to [0, 1]" if self.normalize else "resized only"
        lines.append(f"items: [1, S, S] float32 at {size}; {step}")
        if self.ignored:
            lines.append(f"ignored {len(self.ignored)} hidden entries (e.g. {self.ignored[0].name})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"DeepLenseFolderDataset({str(self.root)!r}, layout={self.layout!r}, "
            f"classes={self.class_names}, n={len(self)})"
        )


def _checked_class_choice(classes: Sequence[str], present: list[str], root: Path) -> tuple[str, ...]:
    chosen = tuple(classes)
    if not chosen or len(set(chosen)) != len(chosen):
        raise DataError(f"{root}: classes= must name distinct class folders (got {chosen})")
    for name in chosen:
        if name not in present:
            raise DataError(f"{root / name}: no such class folder (present: {present})")
    return chosen


def _appended_label(decoded: DecodedImage) -> int:
    """A loose file's label, a class index below :data:`eqlens.data.images.MAX_CLASSES` (the decoder's bound,
    checked again for any decoder), so the class list it implies stays small."""
    if decoded.label is None:
        raise DataError(
            f"{decoded.name}: a loose file must be a flat n*n image with its label appended (got layout "
            f"{decoded.layout}); put unlabelled images into class folders"
        )
    if not 0 <= decoded.label < MAX_CLASSES:
        raise DataError(f"{decoded.name}: the appended label {decoded.label} is not a class index below {MAX_CLASSES}")
    return decoded.label


def _sample_line(path: Path) -> str:
    try:
        decoded = decode_image(path)
    except DataError as err:
        return f"{path.name}: UNREADABLE - {err}"
    h, w = decoded.image.shape
    mass = "" if decoded.axion_mass is None else f", axion mass {decoded.axion_mass:.3g}"
    return f"{path.name}: {decoded.layout}, {h}x{w}, values {decoded.image.min():.4g}..{decoded.image.max():.4g}{mass}"


def load_deeplense_folder(
    root: str | os.PathLike,
    image_size: int | None = None,
    classes: Sequence[str] | None = None,
    normalize: bool = True,
    *,
    split: str | None = None,
    validate: bool = False,
) -> DeepLenseFolderDataset:
    """Build a :class:`DeepLenseFolderDataset`; with ``validate=True`` read every file before returning."""
    dataset = DeepLenseFolderDataset(root, image_size, classes, normalize, split=split)
    if validate:
        dataset.validate()
    return dataset
