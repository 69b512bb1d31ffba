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
    from runner.review import Review

__all__ = ["ResultsScreen"]

#: Test examples a blind review shows, and labelled examples the results screen shows (never the same ones).
REVIEWED, SHOWN = 10, 10


class ResultsScreen(Screen[None]):
    BINDINGS = [("escape", "app.pop_screen", "Back"), ("ctrl+v", "review", "Blind review")]

    def __init__(self, run_dir: str) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.review: Review | None = None

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
        from runner.review import draw_review, read_predictions
        from runner.rundir import RunDir

        ready = report.scorecard["ready"]
        self.query_one("#verdict", Static).update(f"[{'green' if ready else 'yellow'}]{escape(report.verdict)}[/]")
        lines = [escape(report.primary["sentence"]), "",
                 "The p-value is the chance of a difference this large if both models were equally good; the "
                 "interval is the range of differences the data fit. Better means p < 0.05 and the interval above "
                 "zero; inconclusive means too few examples differ to tell either way."]
        lines += [f"[yellow]gate failed: {escape(g['detail'])}[/]" for g in report.scorecard["gates"]
                  if not g["passed"]]
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
        run = RunDir(self.run_dir)
        try:
            base, tuned = read_predictions(run, "base"), read_predictions(run, "tuned")
            # the blind review's examples are drawn now, and never shown labelled here before it is done
            self.review = None if report.human_preference else draw_review(run.path, n=REVIEWED)
        except OSError:
            base, tuned, self.review = [], [], None
        hidden = self.review.indexes if self.review else set()
        shown = [(b, t) for b, t in zip(base, tuned, strict=False) if b["index"] not in hidden][:SHOWN]
        table = self.query_one("#examples", DataTable)
        table.clear(columns=True)
        table.add_columns("reference", "base", "tuned")
        for b, t in shown:
            table.add_row(b["reference"][:40], b["output"][:40], t["output"][:40])
        note = (f"\n{len(hidden)} test examples are kept for the blind review (ctrl+v) and not shown labelled until "
                "it is done." if hidden else "")
        artifact = run.path / run.read_plan().artifact
        self.query_one("#paths", Static).update(f"report: {run.report_md}\nadapter or model: {artifact}{note}")

    def action_review(self) -> None:
        """Blind review of random test answers that this screen has not shown labelled."""
        from advisor.tui.review import BlindReviewScreen

        if self.review is None:
            self.notify("no blind review to do: evaluate the run first, or see the review in the report (examples "
                        "already shown labelled would not be judged blind)", severity="warning")
            return
        self.app.push_screen(BlindReviewScreen(self.run_dir, self.review))
