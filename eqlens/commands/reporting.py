"""Shared output of the experiment commands: print the markdown, optionally save it and the JSON."""

from __future__ import annotations


def emit_report(text: str, report: dict, json_path: str | None, markdown_path: str | None) -> None:
    from ..core.jsonio import atomic_write_bytes, write_json

    print(text, end="")
    if json_path:
        write_json(json_path, report)
        print(f"report written to {json_path}")
    if markdown_path:
        atomic_write_bytes(markdown_path, text.encode())
        print(f"tables written to {markdown_path}")
