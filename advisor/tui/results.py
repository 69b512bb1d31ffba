"""The results screen: the verdict first, the scorecard with its inputs, the statistics in words, examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

__all__ = ["ResultsScreen"]


class ResultsScreen(Screen[None]):
    BINDINGS = [("escape", "app.pop_screen", "Back"), ("ctrl+v", "review", "Blind review")]

    def __init__(self, run_dir: str) -> None:
        super().__init__()
        self.run_dir = run_dir

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll():
            yield Static("evaluating the tuned model against the base (this loads both models)...", id="verdict",
                         classes="title")
            yield Static("", id="evidence")
            yield DataTable(id="scorecard")
            yield DataTable(id="examples")
            yield Static("", id="paths", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        report = Path(self.run_dir) / "report.json"
        if report.exists():
            self.show(json.loads(report.read_text(encoding="utf-8")))
        else:
            self.evaluate()

    @work(thread=True, exclusive=True, group="evaluate")
    def evaluate(self) -> None:
        from runner.evaluate import evaluate_run

        try:
            report = evaluate_run(self.run_dir)
        except Exception as exc:  # shown on screen; the report can be made again with `evaluate`
            self.app.call_from_thread(self.query_one("#verdict", Static).update,
                                      f"[red]evaluation failed: {escape(str(exc))}[/]")
            return
        self.app.call_from_thread(self.show, report)

    def show(self, report: dict[str, Any]) -> None:
        ready = report["scorecard"]["ready"]
        self.query_one("#verdict", Static).update(
            f"[{'green' if ready else 'yellow'}]{escape(report['verdict'])}[/]")
        primary = report["metrics"][report["primary_metric"]]
        lines = [escape(primary["sentence"]), "",
                 "The p-value is the chance of a difference this large if both models were equally good; the "
                 "interval is the range of differences the test supports (above zero: the tuned model is better)."]
        lines += [f"[yellow]note: {escape(w)}[/]" for w in report.get("warnings", [])]
        g = report["general_ability"]
        lines.append(f"General ability: perplexity {g['perplexity_base']:.3f} -> {g['perplexity_tuned']:.3f} "
                     f"({g['perplexity_increase'] * 100:+.1f}%, lower is better)")
        self.query_one("#evidence", Static).update("\n".join(lines))
        card = self.query_one("#scorecard", DataTable)
        card.clear(columns=True)
        card.add_columns("dimension", "weight", "score", "measured")
        for name, d in report["scorecard"]["dimensions"].items():
            shown = ", ".join(f"{k} {v}" for k, v in d["inputs"].items() if k != "sub_scores")
            card.add_row(name, f"{d['weight']:.0%}", "-" if d["score"] is None else f"{d['score']:g}", shown)
        table = self.query_one("#examples", DataTable)
        table.clear(columns=True)
        table.add_columns("reference", "base", "tuned")
        run = Path(self.run_dir)
        try:
            base = [json.loads(x) for x in (run / "eval" / "predictions-base.jsonl").read_text().splitlines()]
            tuned = [json.loads(x) for x in (run / "eval" / "predictions-tuned.jsonl").read_text().splitlines()]
        except OSError:
            base, tuned = [], []
        for b, t in list(zip(base, tuned, strict=False))[:10]:
            table.add_row(b["reference"][:40], b["output"][:40], t["output"][:40])
        artifact = run / ("model" if report["method"] in ("full", "freeze") else "adapter")
        self.query_one("#paths", Static).update(f"report: {run / 'report.md'}\nadapter or model: {artifact}")

    def action_review(self) -> None:
        """Blind review of 10 random test answers (needs the evaluation's prediction files)."""
        from advisor.tui.review import BlindReviewScreen
        from runner.review import review_items

        try:
            items = review_items(self.run_dir, n=10)
        except OSError:
            self.notify("evaluate the run first", severity="warning")
            return
        self.app.push_screen(BlindReviewScreen(self.run_dir, items))
