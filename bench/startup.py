"""How fast the pure commands answer, against a bare Python start-up run side by side.

Usage: .venv/bin/python bench/startup.py [--runs N]

Prints the median wall time of each command and its ratio to `python -c pass`. The goal:
`finetune-advisor recommend` answers in under 0.5 s, which it can only do if it imports no torch.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "finetune-advisor")
COMMANDS = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "python -c 'import torch' (for scale)": [sys.executable, "-c", "import torch"],
    "recommend knowledge.yaml --json": [CLI, "recommend", "--answers", str(ROOT / "examples/knowledge.yaml"), "--json"],
    "recommend style.yaml (reads a data file)": [CLI, "recommend", "--answers", str(ROOT / "examples/style.yaml")],
    "estimate Llama-3.2-3B lora --json": [CLI, "estimate", "--model", "meta-llama/Llama-3.2-3B-Instruct", "--method",
                                          "lora", "--device", "cuda", "--gpu", "H100", "--json"],
    "inspect-data tool_calls.jsonl": [CLI, "inspect-data", str(ROOT / "examples/data/tool_calls.jsonl")],
}


def median_seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    results = {name: median_seconds(cmd, args.runs) for name, cmd in COMMANDS.items()}
    base = results["python -c pass (baseline)"]
    print(f"{'command':45} {'median s':>9} {'x baseline':>11}")
    for name, seconds in results.items():
        print(f"{name:45} {seconds:9.3f} {seconds / base:11.1f}")


if __name__ == "__main__":
    main()
