"""Following a run in the terminal: a rich progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["phase_words", "EventPrinter", "event_markup"]


def phase_words(event: dict[str, Any]) -> str:
    """A phase event as a sentence ("checkpoint saved at step 10: PATH")."""
    e, phase = event, event.get("phase")
    if phase == "prepare":
        return "preparing to resume" if e.get("resume") else "preparing"
    if phase == "data":
        return f"data split: {e.get('train')} training, {e.get('validation')} validation, {e.get('test')} test examples"
    if phase == "model":
        share = f" ({e['trainable_params'] / e['total_params']:.2%})" if e.get("total_params") else ""
        return (f"model loaded on the {e.get('device')} in {e.get('dtype')}: training {e.get('trainable_params', 0):,} "
                f"of {e.get('total_params', 0):,} parameters{share}" + (", short examples packed together"
                                                                       if e.get("packing") else ""))
    if phase == "train":
        return f"training: {e.get('max_steps')} steps" + (f", from step {e['step']}" if e.get("step") else "")
    if phase == "checkpoint":
        return f"checkpoint saved at step {e.get('step')}: {e.get('path')}"
    if phase == "resume":
        return f"resuming from {e.get('checkpoint')}"
    if phase == "save":
        return "saving the trained model"
    details = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in e.items() if k not in ("t", "kind", "phase"))
    return f"{phase}{': ' + details if details else ''}"


def event_markup(event: dict[str, Any]) -> str | None:
    """Rich markup for a phase, warning or error event (None for the other kinds)."""
    kind = event.get("kind")
    if kind == "phase":
        return f"[dim]{escape(phase_words(event))}[/]"
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
