"""Every runnable method with the settings the advisor gives it, on one demo goal and the built-in model.

Usage: .venv/bin/python bench/method_defaults.py [--goal agent] [--methods lora,ia3] [--set overrides.epochs=2]
       [--runs-dir /tmp/method-defaults]

Each method replays the demo's answers file for the goal with `--method M` (and the --set values, the same for
every method), so each trains with its own recommended learning rate and settings; then the table shows, per
method: the learning rate used, the first and last training loss, the primary metric of base and tuned model,
the p-value, and the training time. The demo folder is the cache's (finetune-advisor demo makes it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    from advisor.answers import load_answers
    from advisor.pipeline import apply_settings, demo_answers, replay
    from knowledge import RUNNABLE_METHODS
    from runner.demo_assets import default_dir, ensure_demo_assets
    from runner.events import read_events
    from runner.rundir import RunDir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goal", default="agent", choices=("knowledge", "style", "reasoning", "agent"))
    parser.add_argument("--methods", default=",".join(RUNNABLE_METHODS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--runs-dir", default="/tmp/method-defaults")
    parser.add_argument("--json", metavar="FILE", help="also write the rows to FILE")
    args = parser.parse_args()
    root = default_dir()
    ensure_demo_assets(root, say=print)
    answers = load_answers(demo_answers(root)[args.goal])
    rows = []
    for method in args.methods.split(","):
        started = time.time()
        result = replay(apply_settings(answers, method, args.set), runs_dir=args.runs_dir, allow_network=False,
                        say=lambda message: None)
        row: dict[str, object] = {"method": method, "exit_code": result.exit_code,
                                  "learning_rate": result.plan.hyperparameters["learning_rate"],
                                  "seconds": round(time.time() - started)}
        if result.run:
            losses = [e["loss"] for e in read_events(RunDir(result.run).events) if e["kind"] == "step"]
            row.update(first_loss=round(losses[0], 3) if losses else None,
                       last_loss=round(losses[-1], 3) if losses else None)
        if result.report is not None:
            primary = result.report.primary
            row.update(metric=result.report.primary_metric, base=round(primary["base_mean"], 3),
                       tuned=round(primary["tuned_mean"], 3), p_value=primary["p_value"])
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{'method':14} {'lr':>8} {'loss first':>10} {'last':>7} {'base':>6} {'tuned':>6} {'p':>9} {'s':>5}")
    for r in rows:
        print(f"{r['method']:14} {r['learning_rate']:>8g} {r.get('first_loss', '-'):>10} {r.get('last_loss', '-'):>7} "
              f"{r.get('base', '-'):>6} {r.get('tuned', '-'):>6} {r.get('p_value', 1):>9.3g} {r['seconds']:>5}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
