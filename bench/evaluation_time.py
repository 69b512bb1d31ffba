"""Calibration: how long evaluation takes, measured against the estimate (advisor.estimate.estimate_evaluation).

Usage: .venv/bin/python bench/evaluation_time.py --calls [--out FILE.json]
       .venv/bin/python bench/evaluation_time.py --real [--out FILE.json]
       .venv/bin/python bench/evaluation_time.py --compare FILE.json   (saved --real measurements, no training)

--calls times one forward call, the unit evaluation is made of, on the CPU in fp32 with the threads the
environment gives (OMP_NUM_THREADS, default 2): a general-text passage of about 34 tokens (the built-in general
set's mean) and one step of greedy generation at batch 8 with the KV cache, on Llama-style models of 4 sizes built
from their configs (random weights: timing does not depend on their values). A call costs a fixed time per layer
(kernel launches, Python) and a time per GB of weights read, beyond its FLOPs; the two are fitted by least
squares over the sizes and printed.

--real trains each case's method for 2 steps on the built-in SmolLM2-135M-Instruct (`finetune-advisor train`),
evaluates it (`finetune-advisor evaluate`) and compares report.json's evaluation_seconds, and its parts, with the
recommendation's estimate for the same answers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Llama-style shapes: the layer count and the weights' size vary apart, so the fit can tell the two costs apart.
SIZES = {
    "llama-4L-256": {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "intermediate_size": 688, "vocab_size": 8000},
    "smollm2-135M": {"hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                     "intermediate_size": 1536, "vocab_size": 49152},
    "llama-8L-1024": {"hidden_size": 1024, "num_hidden_layers": 8, "num_attention_heads": 16,
                      "num_key_value_heads": 4, "intermediate_size": 4096, "vocab_size": 32000},
    "smollm2-360M": {"hidden_size": 960, "num_hidden_layers": 32, "num_attention_heads": 15,
                     "num_key_value_heads": 5, "intermediate_size": 2560, "vocab_size": 49152},
}
PASSAGE_TOKENS, NEW_TOKENS, BATCH, PROMPT_TOKENS = 34, 24, 8, 48


def _time_calls(name: str, shape: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**shape, max_position_embeddings=1024, tie_word_embeddings=True)
    model = LlamaForCausalLM(config).eval()
    params = sum(p.numel() for p in model.parameters())
    passage = torch.randint(10, shape["vocab_size"], (1, PASSAGE_TOKENS))
    prompts = torch.randint(10, shape["vocab_size"], (BATCH, PROMPT_TOKENS))
    with torch.no_grad():
        for _ in range(3):  # warm-up
            model(input_ids=passage, labels=passage)
        times = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(8):
                model(input_ids=passage, labels=passage)
            times.append((time.perf_counter() - started) / 8)
        passage_s = statistics.median(times)

        def generate(new: int) -> float:
            cfg = GenerationConfig(max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0,
                                   eos_token_id=None)
            started = time.perf_counter()
            model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), generation_config=cfg)
            return time.perf_counter() - started

        generate(2)
        short = statistics.median(generate(2) for _ in range(3))
        long = statistics.median(generate(2 + NEW_TOKENS) for _ in range(3))
    step_s = (long - short) / NEW_TOKENS
    flops_per_token = 2 * (params - shape["vocab_size"] * shape["hidden_size"])  # the head is tied: counted once
    return {"model": name, "layers": shape["num_hidden_layers"], "params": params, "weight_gb": params * 4 / 1e9,
            "passage_s": passage_s, "decode_step_s": step_s, "passage_flops": flops_per_token * PASSAGE_TOKENS,
            "step_flops": flops_per_token * BATCH}


def calls(out: str) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    rows = [_time_calls(name, shape) for name, shape in SIZES.items()]
    Path(out).write_text(json.dumps(rows, indent=2))
    from advisor.estimate import EstimateConfig, compute_rate
    from advisor.hardware import detect_hardware

    hw = detect_hardware()
    rate = compute_rate(EstimateConfig(method="full", device="cpu"), cpu_cores=torch.get_num_threads(),
                        cpu_vector=hw.cpu_vector, cpu_ghz=hw.cpu_ghz)[0]
    print(f"CPU fp32, {torch.get_num_threads()} threads; FLOPs at the training rate, {rate / 1e9:.0f} GFLOP/s\n")
    print(f"{'model':14} {'layers':>6} {'GB':>6} {'passage ms':>10} {'step ms':>8} {'flops ms p/s':>13}")
    for r in rows:
        flops_ms = f"{r['passage_flops'] / rate * 1e3:.1f}/{r['step_flops'] / rate * 1e3:.1f}"
        print(f"{r['model']:14} {r['layers']:6} {r['weight_gb']:6.3f} {r['passage_s'] * 1e3:10.1f} "
              f"{r['decode_step_s'] * 1e3:8.1f} {flops_ms:>13}")
    for kind in ("passage", "step"):  # what the FLOPs leave: a x layers + b x GB
        a = np.array([[r["layers"], r["weight_gb"]] for r in rows])
        y = np.array([r[f"{kind}_s" if kind == "passage" else "decode_step_s"] - r[f"{kind}_flops"] / rate
                      for r in rows])
        (per_layer, per_gb), *_ = np.linalg.lstsq(a, y, rcond=None)
        fitted = a @ np.array([per_layer, per_gb])
        worst = max(abs(f - v) / (v + r[f"{kind}_flops"] / rate) for r, f, v in zip(rows, fitted, y, strict=True))
        print(f"{kind}: {per_layer * 1e3:.3f} ms per layer + {per_gb:.3f} s per GB of weights beyond the FLOPs "
              f"(worst case {worst:.0%} of the call)")


#: --real cases: (method, data file, evaluation.speed, test examples taken from the file's start; 0: the split)
DATA = ROOT / "examples" / "data"
REAL = [
    ("lora", "support_style", False, 0), ("lora", "support_style", True, 0), ("lora", "support_style", False, 40),
    ("full", "support_style", False, 0), ("dora", "support_style", False, 0), ("qlora", "support_style", False, 0),
    ("p_tuning_v2", "support_style", False, 0), ("lora", "word_problems", False, 0),
    ("ia3", "tool_calls", False, 0),
]
GOALS = {"product_faq": "knowledge", "support_style": "style", "word_problems": "reasoning", "tool_calls": "agent"}


def _answers(case: dict[str, Any], work: Path) -> dict[str, Any]:
    data: dict[str, Any] = {"path": str(DATA / f"{case['data']}.jsonl")}
    if case["test"]:
        lines = (DATA / f"{case['data']}.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        (work / "test.jsonl").write_text("".join(lines[:case["test"]]), encoding="utf-8")
        (work / "train.jsonl").write_text("".join(lines[case["test"]:]), encoding="utf-8")
        data = {"path": str(work / "train.jsonl"), "test_path": str(work / "test.jsonl")}
    return {"version": 1, "goal": GOALS[case["data"]], "data": data,
            "model": {"name_or_path": "builtin/SmolLM2-135M-Instruct"}, "evaluation": {"speed": case["speed"]},
            "overrides": {"method": case["method"], "max_steps": 2, "save_steps": 10_000}}


def real(out: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "HF_HUB_OFFLINE": "1"}
    cli = str(Path(sys.executable).parent / "finetune-advisor")
    measured = []
    for method, data, speed, test in REAL:
        case = {"method": method, "data": data, "speed": speed, "test": test, "threads": int(env["OMP_NUM_THREADS"])}
        work = Path(tempfile.mkdtemp(prefix="evaltime-"))
        (work / "answers.yaml").write_text(json.dumps(_answers(case, work)))
        started = time.monotonic()
        trained = subprocess.run([cli, "train", "--answers", str(work / "answers.yaml"), "--runs-dir",
                                  str(work / "runs"), "--offline"], capture_output=True, text=True, env=env)
        train_wall = time.monotonic() - started
        runs = sorted((work / "runs").glob("*/plan.json"))
        if trained.returncode != 0 or not runs:
            print(f"{method:12} {data:14} training failed: {(trained.stderr.strip().splitlines() or ['-'])[-1]}")
            continue
        run = runs[0].parent
        started = time.monotonic()
        evaluated = subprocess.run([cli, "evaluate", str(run)], capture_output=True, text=True, env=env)
        wall = time.monotonic() - started
        if evaluated.returncode != 0:
            print(f"{method:12} {data:14} evaluation failed: {(evaluated.stderr.strip().splitlines() or ['-'])[-1]}")
            continue
        report = json.loads((run / "report.json").read_text())
        case |= {"evaluation_seconds": report["resources"]["evaluation_seconds"], "command_seconds": round(wall, 1),
                 "train_command_seconds": round(train_wall, 1), "train_seconds": report["resources"]["train_seconds"],
                 "test_examples": report["test_examples"], "max_new_tokens": report["decoding"]["max_new_tokens"],
                 "parts": report["speed"]["evaluation_generation"]}
        measured.append(case)
        Path(out).write_text(json.dumps(measured, indent=2))  # after every case: a stopped run keeps its data
        print(f"measured {method} {data} speed={speed} test={test}: {case['evaluation_seconds']} s", flush=True)
        shutil.rmtree(work, ignore_errors=True)
    compare(out)


def compare(path: str) -> None:
    """The saved measurements against the estimate the current code makes for each case's answers."""
    from advisor.answers import answers_from_dict
    from advisor.recommend import gather_inputs, recommend

    cases = json.loads(Path(path).read_text())
    print("built-in SmolLM2-135M-Instruct, CPU; measured: report.json's evaluation_seconds\n")
    print(f"{'method':12} {'data':14} {'speed':>5} {'test':>4} {'max new':>7} {'meas s':>7} {'est s':>7} {'error':>6}"
          "   generation + general text per variant, measured")
    errors = []
    for case in cases:
        work = Path(tempfile.mkdtemp(prefix="evaltime-"))
        raw = _answers(case, work)
        raw["hardware"] = {"gpus": [], "ram_gb": 24}  # the CPU: this machine's, detected
        rec = recommend(gather_inputs(answers_from_dict(raw), allow_network=False))
        shutil.rmtree(work, ignore_errors=True)
        estimated = rec.time["evaluation_seconds"]
        error = (estimated - case["evaluation_seconds"]) / case["evaluation_seconds"]
        errors.append(abs(error))
        parts = ", ".join(f"{k} {v['seconds']:.1f}+{v.get('general_seconds', 0):.1f}" for k, v in case["parts"].items())
        print(f"{case['method']:12} {case['data']:14} {'on' if case['speed'] else 'off':>5} "
              f"{case['test_examples']:4} {case['max_new_tokens']:7} {case['evaluation_seconds']:7.1f} "
              f"{estimated:7.1f} {error:+6.0%}   {parts}")
    if errors:
        print(f"\nmedian |error| {statistics.median(errors):.0%}, max |error| {max(errors):.0%} "
              f"over {len(errors)} cases")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", action="store_true", help="time one forward call on models of 4 sizes")
    parser.add_argument("--real", action="store_true", help="train and evaluate the real model, every case")
    parser.add_argument("--compare", help="compare saved --real measurements with the current estimate")
    parser.add_argument("--out", default="evaluation_time.json")
    args = parser.parse_args()
    if args.calls:
        calls(args.out)
    elif args.compare:
        compare(args.compare)
    elif args.real:
        real(args.out)
    else:
        parser.error("give --calls, --real or --compare FILE")


if __name__ == "__main__":
    main()
