"""Memory calibration: measured peak training memory against `finetune-advisor estimate`, over a grid.

Usage: .venv/bin/python bench/memory_calibration.py [--full] [--out FILE.json]

Each case runs in a fresh process: import the stack, note the resident memory (the baseline), build the
model from its config (random weights), apply the method with the runner's own builders, and run 3
optimizer steps with transformers' Trainer at a fixed batch x sequence length. The measured figure is the
peak resident memory above the baseline (CPU; on CUDA the allocator peak plus the context would be used).
The estimate is advisor.estimate.estimate_memory for the same settings. Prints a table and the median and
maximum relative error, and writes the cases as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = {
    "llama-35M": {"model_type": "llama", "hidden_size": 512, "num_hidden_layers": 8, "num_attention_heads": 8,
                  "num_key_value_heads": 4, "intermediate_size": 1376, "vocab_size": 16000,
                  "tie_word_embeddings": False, "max_position_embeddings": 1024},
    "llama-9M": {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "intermediate_size": 688, "vocab_size": 8000,
                 "tie_word_embeddings": False, "max_position_embeddings": 1024},
}
QUICK = [  # (model, method, batch, seq, gradient checkpointing)
    ("llama-35M", "full", 4, 256, False), ("llama-35M", "full", 4, 256, True),
    ("llama-35M", "lora", 4, 256, False), ("llama-35M", "lora", 8, 512, False),
    ("llama-35M", "lora", 8, 512, True), ("llama-35M", "qlora", 4, 256, False),
    ("llama-35M", "dora", 4, 256, False), ("llama-35M", "p_tuning_v2", 4, 256, False),
    ("llama-35M", "prompt_tuning", 4, 256, False), ("llama-35M", "ia3", 4, 256, False),
    ("llama-35M", "freeze", 4, 256, False), ("llama-9M", "lora", 8, 512, False),
]
FULL = QUICK + [(m, meth, b, s, gc) for m in MODELS for meth in ("lora", "full") for b in (2, 8) for s in (128, 512)
                for gc in (False, True)]


def measure(case: dict[str, Any]) -> float:
    """Runs in the child process: peak RSS above the post-import baseline, in GB."""
    import resource

    import psutil
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, Trainer, TrainingArguments

    from runner.methods import apply_method

    torch.set_num_threads(1)
    baseline = psutil.Process().memory_info().rss
    config = AutoConfig.for_model(**MODELS[case["model"]])
    if case["method"] == "qlora":
        import tempfile

        from runner.model import load_model

        folder = tempfile.mkdtemp()
        AutoModelForCausalLM.from_config(config).save_pretrained(folder)
        model = load_model(folder, device="cpu", method="qlora", bits=4)
    else:
        model = AutoModelForCausalLM.from_config(config)
    model.config.use_cache = False
    arch_modules = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o", "gate_proj": "gate",
                    "up_proj": "up", "down_proj": "down"}
    plan = {"method": case["method"], "model": {"modules": arch_modules},
            "hyperparameters": {"lora_rank": 16, "lora_alpha": 32, "lora_dropout": 0.0, "lora_targets": "all-linear",
                                "num_virtual_tokens": 20, "freeze_trainable_layers": 2}}
    model = apply_method(model, plan)
    ids = torch.randint(10, 1000, (case["seq"],)).tolist()
    rows = [{"input_ids": ids, "attention_mask": [1] * len(ids), "labels": ids} for _ in range(case["batch"] * 3)]
    args = TrainingArguments(output_dir="/tmp/memcal", per_device_train_batch_size=case["batch"], max_steps=3,
                             learning_rate=1e-4, report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True,
                             logging_steps=100, optim="adamw_torch_fused", remove_unused_columns=False,
                             gradient_checkpointing=case["gc"],
                             gradient_checkpointing_kwargs={"use_reentrant": False})
    Trainer(model=model, args=args, train_dataset=rows).train()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return max(peak - baseline, 0) / 1e9


def estimate(case: dict[str, Any]) -> float:
    from advisor.estimate import EstimateConfig, estimate_memory
    from advisor.model_profile import profile_from_config

    profile = profile_from_config(MODELS[case["model"]], name=case["model"], source="folder")
    cfg = EstimateConfig(case["method"], batch_size=case["batch"], seq_len=case["seq"],
                         gradient_checkpointing=case["gc"], lora_rank=16, num_virtual_tokens=20, device="cpu")
    return estimate_memory(profile, cfg).total_bytes / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the whole grid (slower)")
    parser.add_argument("--out", default="memory_calibration.json")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: measure one case in this process
    args = parser.parse_args()
    if args.case:
        print(json.dumps({"measured_gb": measure(json.loads(args.case))}))
        return
    results = []
    grid = FULL if args.full else QUICK
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    print(f"{'model':10} {'method':14} {'batch':>5} {'seq':>5} {'gc':>3} {'measured GB':>12} {'estimate GB':>12} "
          f"{'error':>7}")
    for model, method, batch, seq, gc in grid:
        case = {"model": model, "method": method, "batch": batch, "seq": seq, "gc": gc}
        out = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True,
                             text=True, env=env)
        if out.returncode != 0:
            print(f"{model:10} {method:14} failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        measured = json.loads(out.stdout.strip().splitlines()[-1])["measured_gb"]
        est = estimate(case)
        error = (est - measured) / measured
        results.append({**case, "measured_gb": measured, "estimated_gb": est, "relative_error": error})
        print(f"{model:10} {method:14} {batch:5} {seq:5} {'on' if gc else 'off':>3} {measured:12.3f} {est:12.3f} "
              f"{error:+7.0%}", flush=True)
    errors = [abs(r["relative_error"]) for r in results]
    if errors:
        print(f"\nmedian |error| {statistics.median(errors):.0%}, max |error| {max(errors):.0%} over "
              f"{len(errors)} cases (CPU, fp32, 1 thread)")
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
