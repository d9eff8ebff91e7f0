"""Shared pieces of the benchmark scripts: devices, timing, peak memory, the machine, markdown tables.

Every benchmark prints a markdown table and writes it, with the machine and the date, under
``docs/``; numbers are only comparable between runs on the same machine line.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


def devices(choice: str = "auto") -> list[torch.device]:
    """``"auto"``: the CPU, and CUDA when present; ``"cpu"``/``"cuda"``: that one (CUDA must exist)."""
    if choice == "auto":
        return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    device = torch.device(choice)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but torch sees no CUDA device")
    return [device]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], object], device: torch.device, warmup: int = 2, repeats: int = 5) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls, GPU work included."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _resident_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    """Peak memory of one call of ``fn()``.

    CUDA: ``torch.cuda.max_memory_allocated`` during the call (weights, activations, gradients).
    CPU: growth of the process's peak resident set during the call (Linux ``VmHWM``, reset through
    ``/proc/self/clear_refs``), so memory already held before (the weights) is not counted;
    ``None`` where the kernel offers no such counter."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    before = _resident_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # "5" resets VmHWM to the current RSS
    except OSError:
        return None
    fn()
    peak = _resident_kib("VmHWM")
    if before is None or peak is None:
        return None
    return max(peak - before, 0) * 1024


def format_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(device: torch.device | str | None = None) -> str:
    """One line: CPU (cores, torch threads, load), GPU if ``device`` is CUDA, torch and Python."""
    parts = [f"CPU {_cpu_name()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"]
    if hasattr(os, "getloadavg"):
        parts.append("load avg {:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg()))
    if device is not None and torch.device(device).type == "cuda":
        props = torch.cuda.get_device_properties(torch.device(device))
        parts.append(f"GPU {props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}")
    parts.append(f"torch {torch.__version__}, Python {platform.python_version()}, {platform.system()}")
    return "; ".join(parts)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub markdown table; floats get 3 significant digits (1 decimal from 100 on), ints separators."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {row!r} has {len(row)} cells for {len(headers)} headers")
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


def report(title: str, sections: Sequence[str], notes: Sequence[str] = ()) -> str:
    """A markdown page: title, date (UTC), the given sections (tables with their machine lines), notes."""
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"# {title}", "", f"Measured {date}.", ""]
    for section in sections:
        body += [section, ""]
    body += [f"- {note}" for note in notes]
    return "\n".join(body).rstrip() + "\n"


def write_report(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` (relative paths from the repository root); returns the path."""
    path = Path(path)
    path = path if path.is_absolute() else REPO_ROOT / path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
