"""How fast the app shows its first screen, against a bare Textual app run side by side.

Usage: .venv/bin/python bench/app_startup.py [--runs N]

Each run is a fresh process that starts the app headless, waits for its first screen to be drawn, and exits; the
median wall time of each, and the ratio. The goal (issue 19): the interview's first screen within 1.2x of a bare
Textual app's start-up.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Both exit once their first screen has been drawn (the pilot's first pause waits for it).
FIRST_FRAME = """
async def first_frame(pilot):
    await pilot.pause()
    pilot.app.exit()
"""

BARE = FIRST_FRAME + """
from textual.app import App
from textual.widgets import Footer, Header, Label

class Bare(App):
    def compose(self):
        yield Header()
        yield Label("hello")
        yield Footer()

Bare().run(headless=True, size=(80, 24), auto_pilot=first_frame)
"""

OURS = FIRST_FRAME + """
from advisor.tui.app import FinetuneAdvisorApp

FinetuneAdvisorApp().run(headless=True, size=(80, 24), auto_pilot=first_frame)
"""


def median_seconds(code: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    bare, ours = [], []
    for _ in range(args.runs):  # interleaved, so both see the same machine load
        bare.append(median_seconds(BARE, 1))
        ours.append(median_seconds(OURS, 1))
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"bare Textual app      {b:.3f} s")
    print(f"finetune-advisor app  {o:.3f} s")
    print(f"ratio                 {o / b:.2f}x (goal: at most 1.2x)")


if __name__ == "__main__":
    main()
