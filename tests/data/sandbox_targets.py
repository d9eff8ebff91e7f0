"""Decoders that misbehave on purpose, run by tests/data/test_sandbox.py in the sandbox's child process
(``decode_untrusted(data, name, decoder="tests.data.sandbox_targets:<name>")``)."""

from __future__ import annotations

import ctypes
import sys


def segfault(data: bytes, filename: str):
    """Dies with SIGSEGV, as numpy's ``__setstate__`` did on a crafted object array."""
    ctypes.string_at(0)


def hog(data: bytes, filename: str):
    """Allocates without bound (a decompression bomb)."""
    blocks = []
    while True:
        blocks.append(bytearray(64 << 20))


def spin(data: bytes, filename: str):
    """Never returns (a decoder stuck in a loop)."""
    while True:
        pass


def garbage(data: bytes, filename: str):
    """Answers something that is not the protocol (a compromised decoder)."""
    sys.stdout.buffer.write(b"\x80\x04not json at all\n" + b"\x00" * 100)
    sys.stdout.buffer.flush()
    raise SystemExit(0)


def lying(data: bytes, filename: str):
    """Claims a larger image than the pixels it sends."""
    sys.stdout.buffer.write(b'{"shape": [4096, 4096], "layout": "npy_image"}\n' + b"\x00" * 64)
    sys.stdout.buffer.flush()
    raise SystemExit(0)
