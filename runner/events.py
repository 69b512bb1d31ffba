"""events.jsonl: the append-only progress log a training process writes and any front end follows."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["EventLog", "KINDS", "read_events", "follow_events"]

KINDS = ("phase", "step", "eval", "warning", "error", "done")


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: they are written as strings so every line stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class EventLog:
    """Appends one JSON object a line: {"t": unix seconds, "kind": ..., ...}."""

    def __init__(self, path: str | Path, *, write: bool = True) -> None:
        """write=False: events are built but not written (training processes other than the first)."""
        self.path = Path(path)
        self.write = write
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if write:
            self._end_torn_line()

    def _end_torn_line(self) -> None:
        """A process killed mid-write (or a full disk) leaves a last line without its newline; the next event
        would be glued to it and lost too. End it, so that only the torn event is skipped by readers."""
        try:
            with self.path.open("rb+") as f:
                f.seek(0, os.SEEK_END)
                if f.tell() == 0:
                    return
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
        except FileNotFoundError:
            return

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        event = {"t": round(time.time(), 3), "kind": kind, **_clean(fields)}
        if not self.write:
            return event
        line = json.dumps(event, ensure_ascii=False) + "\n"
        with self.path.open("a", encoding="utf-8", errors="replace") as f:
            f.write(line)
            f.flush()
            if kind in ("error", "done"):
                os.fsync(f.fileno())
        return event


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """Every complete event; a torn last line (the writer was killed mid-write) is skipped."""
    p = Path(path)
    if not p.exists():
        return []
    out = []
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and "kind" in event:
            out.append(event)
    return out


def follow_events(path: str | Path, *, poll_s: float = 0.25, alive: Any = None) -> Iterator[dict[str, Any]]:
    """Events as they are written, from the start of the file.

    With `alive` (a function: is the training process still running?), it ends once the process is gone
    and everything it wrote has been read: a run stopped and resumed has several `done` events, and only
    the process says which is the last. Without `alive`, it ends at the first `done` it reaches."""
    p = Path(path)
    offset = 0
    pending = b""

    def read_new() -> list[dict[str, Any]]:
        nonlocal offset, pending
        if not p.exists():
            return []
        with p.open("rb") as f:
            f.seek(offset)
            chunk = f.read()
        offset += len(chunk)
        pending += chunk
        *lines, pending = pending.split(b"\n")
        out = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:  # a torn line, or bytes that are not UTF-8 (UnicodeDecodeError)
                continue
            if isinstance(event, dict):
                out.append(event)
        return out

    while True:
        gone = alive is not None and not alive()  # asked before reading: nothing written after is missed
        new = read_new()
        yield from new
        if gone:
            return
        if alive is None and any(e.get("kind") == "done" for e in new):
            return
        if not new:
            time.sleep(poll_s)
