"""Training throughput: the runner against a plain transformers Trainer + peft script, side by side.

Usage: .venv/bin/python bench/train_throughput.py [--steps N] [--rounds N] [--dir DIR] [--model FOLDER]

Same model (the built-in SmolLM2-135M-Instruct, or --model), same data (all four demo sets mixed, as real data
varies in length), same LoRA settings
(rank 16 on all linear layers), same batch and number of steps, one thread, in one process, alternating
runs. Tokens per second counts real (unpadded) tokens. Prints each variant's median and its ratio to the
plain script:

  plain       Trainer + peft, the usual tutorial script: chat-template text, labels = input_ids,
              DataCollatorForSeq2Seq dynamic padding, fp32
  plain-bf16  the same script with bf16=True in its TrainingArguments (autocast on the CPU)
  runner      finetune-advisor's runner (answer-only loss, dynamic padding), with the precision it chooses
              for this machine (bf16 where the CPU has bf16 units: `finetune-advisor hardware` says)
  packed      the runner with padding-free batching (examples flattened into one row, packing: true)

The ratios to plain-bf16 show what comes from the runner rather than from the dtype.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCH, LR, RANK, MAX_LEN = 8, 2e-4, 16, 256


def plain_script(model_dir: Path, data: Path, steps: int, out: Path, bf16: bool = False) -> float:
    """What a user would write with transformers + peft directly; returns tokens per second."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    texts = [tok.apply_chat_template(r["messages"], tokenize=False) for r in rows]
    encoded = [tok(t, truncation=True, max_length=MAX_LEN, add_special_tokens=False) for t in texts]
    dataset = [{"input_ids": e["input_ids"], "attention_mask": e["attention_mask"], "labels": e["input_ids"]}
               for e in encoded]
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=RANK, lora_alpha=2 * RANK, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    tokens = [0]
    collate = DataCollatorForSeq2Seq(tok, padding=True)

    def counting(batch: list[dict[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = collate(batch)
        tokens[0] += int(result["attention_mask"].sum())
        return result

    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=BATCH, learning_rate=LR,
                             max_steps=steps, logging_steps=10, save_strategy="no", report_to=[], use_cpu=True,
                             disable_tqdm=True, seed=0, remove_unused_columns=False, dataloader_num_workers=0,
                             bf16=bf16)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=counting)
    start = time.perf_counter()
    trainer.train()
    return tokens[0] / (time.perf_counter() - start)


def runner(model_dir: Path, data: Path, steps: int, out: Path, packing: bool) -> float:
    from advisor.answers import answers_from_dict
    from advisor.plan import make_plan
    from advisor.recommend import gather_inputs, recommend
    from advisor.runs import create_run
    from runner.events import read_events
    from runner.train import run_training

    raw = {"version": 1, "goal": "knowledge", "data": {"path": str(data)}, "model": {"name_or_path": str(model_dir)},
           "hardware": {"gpus": [], "ram_gb": 16},
           "overrides": {"method": "lora", "lora_rank": RANK, "lora_alpha": 2 * RANK, "learning_rate": LR,
                         "batch_size": BATCH, "gradient_accumulation": 1, "max_steps": steps, "save_steps": 10**6,
                         "max_length": MAX_LEN, "packing": packing}}
    answers = answers_from_dict(raw)
    rec = recommend(gather_inputs(answers, allow_network=False))  # this CPU, detected: its bf16 units too
    plan = make_plan(answers, rec)
    plan.data.split = {"validation": 0.0, "test": 0.1}  # no evaluation inside the timed loop
    plan.training.logging_steps = int(os.environ.get("BENCH_LOGGING_STEPS", plan.training.logging_steps))
    run = create_run(answers, rec, plan, str(out))
    assert run_training(run) == 0
    done = read_events(run.events)[-1]
    return float(done["tokens_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", help="demo assets folder (default: the cache)")
    parser.add_argument("--model", help="a model folder to train instead of the built-in SmolLM2-135M-Instruct")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from runner.demo_assets import ensure_demo_assets

    assets = ensure_demo_assets(args.dir)
    model_dir = Path(args.model) if args.model else assets["model"]
    from runner.data import load_rows

    mixed = [row for goal in ("knowledge", "style", "reasoning", "agent")
             for row in load_rows(str(assets[f"data:{goal}"]), None)[0]]
    import random

    random.Random(0).shuffle(mixed)
    results: dict[str, list[float]] = {"plain": [], "plain-bf16": [], "runner": [], "packed": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mixed.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in mixed))
        variants = {
            "plain": lambda i: plain_script(model_dir, data, args.steps, Path(tmp) / f"plain{i}"),
            "plain-bf16": lambda i: plain_script(model_dir, data, args.steps, Path(tmp) / f"plainbf{i}", bf16=True),
            "runner": lambda i: runner(model_dir, data, args.steps, Path(tmp) / f"runs{i}", packing=False),
            "packed": lambda i: runner(model_dir, data, args.steps, Path(tmp) / f"packed{i}", packing=True),
        }
        names = list(variants)
        for i in range(args.rounds):
            for name in names[i % len(names):] + names[: i % len(names)]:  # rotate the order each round
                results[name].append(variants[name](i))
    base, base16 = statistics.median(results["plain"]), statistics.median(results["plain-bf16"])
    print(f"LoRA r{RANK}, batch {BATCH}, {args.steps} steps, {args.rounds} rounds, {args.threads} CPU thread(s), "
          f"{model_dir.name}")
    print(f"{'variant':12} {'tokens/s (median)':>18} {'/ plain':>8} {'/ plain-bf16':>13}   all rounds")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"{name:12} {med:18.0f} {med / base:8.2f} {med / base16:13.2f}   {', '.join(f'{v:.0f}' for v in values)}")


if __name__ == "__main__":
    main()
