"""Following a run in the terminal: a rich progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["EventPrinter", "event_markup"]


def event_markup(event: dict[str, Any]) -> str | None:
    """Rich markup for a phase, warning or error event (None for the other kinds)."""
    kind = event.get("kind")
    if kind == "phase":
        details = ", ".join(f"{k} {v}" for k, v in event.items() if k not in ("t", "kind", "phase"))
        return f"[dim]{event.get('phase')}{': ' + escape(details) if details else ''}[/]"
    if kind == "warning":
        return f"[yellow]warning:[/] {escape(str(event.get('message')))}"
    if kind == "error":
        return f"[red]error:[/] {escape(str(event.get('message')))}"
    return None


class EventPrinter:
    """Shows events as they come: call it with each event, and close() at the end."""

    def __init__(self, *, plain: bool | None = None, stderr: bool = False) -> None:
        self.console = Console(highlight=False, soft_wrap=True, stderr=stderr)
        stream = sys.stderr if stderr else sys.stdout
        self.plain = not stream.isatty() if plain is None else plain
        self.progress: Progress | None = None
        self.task: Any = None

    def _bar(self, total: int) -> None:
        if self.plain or self.progress is not None:
            return
        self.progress = Progress(TextColumn("[bold]training"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                 TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=self.console)
        self.progress.start()
        self.task = self.progress.add_task("train", total=total, info="")

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "step":
            loss = event.get("loss")
            shown = f"{loss:.4f}" if isinstance(loss, float) else str(loss)  # "nan" arrives as a string
            info = (f"loss {shown}  lr {event.get('learning_rate', 0):.2e}  "
                    f"{event.get('tokens_per_s', 0):.0f} tok/s  {event.get('memory_gb', 0):.2f} GB")
            self._bar(int(event.get("max_steps") or 0))
            if self.progress is not None:
                self.progress.update(self.task, completed=event["step"], total=event.get("max_steps"), info=info)
            else:
                self.console.print(f"step {event['step']}/{event.get('max_steps')}  epoch {event.get('epoch')}  {info}")
            return
        self._print(kind, event)

    def _print(self, kind: Any, event: dict[str, Any]) -> None:
        out = self.progress.console if self.progress is not None else self.console
        markup = event_markup(event)
        if markup is not None:
            out.print(markup)
        elif kind == "eval":
            out.print(f"validation loss {event.get('eval_loss'):.4f} at step {event.get('step')}")
        elif kind == "done":
            self.close()
            status = event.get("status")
            colour = {"done": "green", "stopped": "yellow"}.get(str(status), "red")
            line = f"[{colour}]{status}[/]"
            if event.get("steps") is not None:
                line += (f" after {event['steps']} steps, {event.get('train_seconds')} s, "
                         f"{event.get('tokens_per_s')} tok/s, peak {event.get('peak_memory_gb')} GB")
            self.console.print(line)
            if event.get("artifact"):
                self.console.print(f"saved: {escape(str(event['artifact']))}")
            if event.get("message") and status != "failed":
                self.console.print(escape(str(event["message"])))

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
