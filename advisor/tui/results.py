"""The results screen: the verdict first, the scorecard with its inputs, the statistics in words, examples."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

if TYPE_CHECKING:
    from runner.report import Report

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
        from runner.report import read_report
        from runner.rundir import RunDir

        run = RunDir(self.run_dir)
        if run.report_json.exists():
            self.show(read_report(run))
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

    def show(self, report: Report) -> None:
        from runner.report import general_sentence, scorecard_rows
        from runner.review import read_predictions
        from runner.rundir import RunDir

        ready = report.scorecard["ready"]
        self.query_one("#verdict", Static).update(f"[{'green' if ready else 'yellow'}]{escape(report.verdict)}[/]")
        lines = [escape(report.primary["sentence"]), "",
                 "The p-value is the chance of a difference this large if both models were equally good; the "
                 "interval is the range of differences the test supports (above zero: the tuned model is better)."]
        lines += [f"[yellow]note: {escape(w)}[/]" for w in report.warnings]
        lines.append(escape(general_sentence(report)))
        if report.human_preference:
            lines.append(escape(report.human_preference["sentence"]))
        self.query_one("#evidence", Static).update("\n".join(lines))
        card = self.query_one("#scorecard", DataTable)
        card.clear(columns=True)
        card.add_columns("dimension", "weight", "score", "measured")
        for row in scorecard_rows(report):
            card.add_row(*row)
        table = self.query_one("#examples", DataTable)
        table.clear(columns=True)
        table.add_columns("reference", "base", "tuned")
        run = RunDir(self.run_dir)
        try:
            base, tuned = read_predictions(run, "base"), read_predictions(run, "tuned")
        except OSError:
            base, tuned = [], []
        for b, t in list(zip(base, tuned, strict=False))[:10]:
            table.add_row(b["reference"][:40], b["output"][:40], t["output"][:40])
        artifact = run.path / run.read_plan().artifact
        self.query_one("#paths", Static).update(f"report: {run.report_md}\nadapter or model: {artifact}")

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
