"""How fast the app shows its first screen, against a bare Textual app run side by side.

Usage: .venv/bin/python bench/app_startup.py [--runs N]

Each run is a fresh process that starts the app headless, waits for its first screen to be drawn, and exits; the
median wall time of each, and the ratio. The goal (issue 19): the interview's first screen within 1.2x of a bare
Textual app's start-up.
"""

from __future__ import annotations

import argparse
import os
import resource
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


#: As on a user's machine, compiled modules are cached (some sandboxes set PYTHONDONTWRITEBYTECODE, which would
#: have this project's modules compiled on every start while Textual's were compiled at install).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def seconds(code: str) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one start; CPU time varies less with the machine's other load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT, env=ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    seconds(BARE), seconds(OURS)  # a first start of each, untimed: it writes the compiled modules
    bare, ours = [], []
    for _ in range(args.runs):  # interleaved, so both see the same machine load
        bare.append(seconds(BARE))
        ours.append(seconds(OURS))
    for what, i in (("wall", 0), ("CPU", 1)):
        b, o = statistics.median(t[i] for t in bare), statistics.median(t[i] for t in ours)
        print(f"{what:4s}  bare Textual app {b:.3f} s, finetune-advisor app {o:.3f} s: {o / b:.2f}x")
    print(f"goal: at most 1.2x ({args.runs} starts of each, medians)")


if __name__ == "__main__":
    main()
