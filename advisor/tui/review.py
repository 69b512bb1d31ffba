"""Blind review: answers shown as A and B in random order; the person picks the better one or a tie."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Label, Static

from advisor.tui.footer import KeysFooter
from runner.review import Review, record_preference

__all__ = ["BlindReviewScreen"]


class BlindReviewScreen(Screen[None]):
    BINDINGS = [Binding("a", "choose('A')", "A is better"), Binding("b", "choose('B')", "B is better"),
                Binding("t", "choose('tie')", "Tie"), Binding("escape", "app.pop_screen", "Back to the results")]

    def __init__(self, run_dir: str, review: Review) -> None:
        super().__init__()
        self.run_dir, self.review, self.items = run_dir, review, review.items
        self.choices: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label("", id="counter", classes="title")
        with VerticalScroll():
            yield Static("", id="prompt", classes="field-text")
            with Horizontal(id="answers"):
                yield Static("", id="answer-a")
                yield Static("", id="answer-b")
        yield Static("Which answer is better? Press a, b, or t for a tie. Which model wrote which is hidden.",
                     id="review-hint", classes="hint")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.show()

    def show(self) -> None:
        if len(self.choices) == len(self.items):
            result = record_preference(self.run_dir, self.review, self.choices)
            self.query_one("#counter", Label).update("Review done")
            self.query_one("#prompt", Static).update(escape(result["sentence"]) + "\n\nAdded to the report and "
                                                     "to the results screen (escape goes back to it).")
            self.query_one("#answers").display = False
            self.query_one("#review-hint", Static).update("The review is done: escape goes back to the results.")
            return
        item = self.items[len(self.choices)]
        self.query_one("#counter", Label).update(f"Answer {len(self.choices) + 1} of {len(self.items)}")
        self.query_one("#prompt", Static).update(f"[b]Prompt[/b]\n{escape(item.prompt)}")
        self.query_one("#answer-a", Static).update(f"[b]A[/b]\n{escape(item.a)}")
        self.query_one("#answer-b", Static).update(f"[b]B[/b]\n{escape(item.b)}")

    def action_choose(self, choice: str) -> None:
        if len(self.choices) < len(self.items):
            self.choices.append(choice)
            self.show()
