"""Calibration: measured peak training memory and step time against `finetune-advisor estimate`, over a grid.

Usage: .venv/bin/python bench/memory_calibration.py [--full] [--device cpu|cuda] [--out FILE.json]
                                                    [--malloc-mmap-threshold BYTES]
       .venv/bin/python bench/memory_calibration.py --real [--steps N]   (the real model, through the runner)

Each case runs in a fresh process: import the stack, note the resident memory (the baseline), build the
model from its config (random weights), apply the method with the runner's own builders, and run 4
optimizer steps with transformers' Trainer at a fixed batch x sequence length. Memory: the peak resident
memory above the baseline on the CPU; on CUDA, torch.cuda.max_memory_reserved plus the CUDA context (this
process's GPU memory from NVML less what the allocator holds), with models of 0.1B to 1.5B parameters in bf16
(random weights). Against
advisor.estimate.estimate_memory. Time: the median of steps 2-4 (the first warms up) against
advisor.estimate.estimate_time on one core. Prints both tables with the median and maximum relative error,
and writes the cases as JSON.

With --malloc-mmap-threshold 131072 every tensor over 128 KiB is mmapped and returned on free, so the peak is
the live tensors alone: compare it with the estimate less its cpu_heap_retention term to check the tensor
accounting (the part that carries over to CUDA) separately from glibc's heap retention.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
#: "qlora8" is QLoRA over an 8-bit (LLM.int8) base; "qlora" is 4-bit NF4.
HELD_OUT_METHODS = ("qlora", "qlora8", "dora", "prefix", "p_tuning_v2", "p_tuning", "prompt_tuning", "ia3", "freeze")
#: Realistic sizes for a GPU (random weights; memory does not depend on their values).
CUDA_MODELS = {
    "llama-0.1B": {"model_type": "llama", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                   "num_key_value_heads": 12, "intermediate_size": 2048, "vocab_size": 32000,
                   "tie_word_embeddings": False, "max_position_embeddings": 4096},
    "llama-0.5B": {"model_type": "llama", "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                   "num_key_value_heads": 8, "intermediate_size": 2816, "vocab_size": 32000,
                   "tie_word_embeddings": False, "max_position_embeddings": 4096},
    "qwen2-1.5B": {"model_type": "qwen2", "hidden_size": 1536, "num_hidden_layers": 28, "num_attention_heads": 12,
                   "num_key_value_heads": 2, "intermediate_size": 8960, "vocab_size": 151936,
                   "tie_word_embeddings": True, "max_position_embeddings": 4096},
}
MODELS.update(CUDA_MODELS)
CUDA_METHODS = ("full", "freeze", "lora", "dora", "qlora", "qlora8", "prefix", "p_tuning_v2", "p_tuning",
                "prompt_tuning", "ia3")
CUDA_QUICK = [("llama-0.5B", m, 4, 512, False) for m in CUDA_METHODS] + [
    ("qwen2-1.5B", "lora", 4, 1024, False), ("qwen2-1.5B", "lora", 4, 1024, True),
    ("qwen2-1.5B", "qlora", 4, 1024, True)]
CUDA_FULL = list(dict.fromkeys(CUDA_QUICK + [
    (m, meth, b, s, gc) for m in CUDA_MODELS for meth in ("full", "lora", "qlora") for b in (1, 4) for s in (512, 1024)
    for gc in (False, True)]))
CPU_MODELS = ("llama-35M", "llama-9M")
FULL = QUICK + [(m, meth, b, s, False) for m, b, s in (("llama-9M", 8, 512), ("llama-9M", 2, 128),
                                                       ("llama-35M", 8, 512)) for meth in HELD_OUT_METHODS] + [
    (m, meth, b, s, gc) for m in CPU_MODELS for meth in ("lora", "full") for b in (2, 8) for s in (128, 512)
    for gc in (False, True)]
FULL = list(dict.fromkeys(FULL))  # each case once


def measure(case: dict[str, Any]) -> dict[str, float]:
    """Runs in the child process: peak RSS above the post-import baseline (GB) and the median step time (s)."""
    import resource
    import time

    import psutil
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

    from runner.methods import apply_method

    cuda = case.get("device") == "cuda"
    torch.set_num_threads(1)
    if cuda:
        torch.zeros(1, device="cuda")  # the CUDA context exists from here on
        torch.cuda.reset_peak_memory_stats()
    baseline = psutil.Process().memory_info().rss
    config = AutoConfig.for_model(**MODELS[case["model"]])
    method = "qlora" if case["method"] == "qlora8" else case["method"]
    dtype = torch.bfloat16 if cuda else torch.float32
    if method == "qlora":
        import tempfile

        from runner.model import load_model

        folder = tempfile.mkdtemp()
        AutoModelForCausalLM.from_config(config, dtype=dtype).save_pretrained(folder)
        model = load_model(folder, device="cuda" if cuda else "cpu", method="qlora",
                           bits=8 if case["method"] == "qlora8" else 4)
        shutil.rmtree(folder, ignore_errors=True)
    else:
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        if cuda:
            model.to("cuda")
    model.config.use_cache = False
    arch_modules = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o", "gate_proj": "gate",
                    "up_proj": "up", "down_proj": "down"}
    from knowledge import method_card
    from runner.plan import Plan, PlanData, PlanModel

    plan = Plan(goal="knowledge", method=method, method_family=method_card(method).family,
                model=PlanModel("calibration", modules=arch_modules), data=PlanData("none"),
                hyperparameters={"lora_rank": 16, "lora_alpha": 32, "lora_dropout": 0.0, "lora_targets": "all-linear",
                                 "num_virtual_tokens": 20, "freeze_trainable_layers": 2})
    model = apply_method(model, plan)
    ids = torch.randint(10, 1000, (case["seq"],)).tolist()
    rows = [{"input_ids": ids, "attention_mask": [1] * len(ids), "labels": ids} for _ in range(case["batch"] * 4)]
    args = TrainingArguments(output_dir="/tmp/memcal", per_device_train_batch_size=case["batch"], max_steps=4,
                             learning_rate=1e-4, report_to=[], use_cpu=not cuda, bf16=cuda, save_strategy="no",
                             disable_tqdm=True,
                             logging_steps=100, optim="adamw_torch_fused", remove_unused_columns=False,
                             gradient_checkpointing=case["gc"],
                             gradient_checkpointing_kwargs={"use_reentrant": False})
    steps: list[float] = []

    class StepTimer(TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            if cuda:
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            if cuda:
                torch.cuda.synchronize()  # kernels run asynchronously: wait for the step's
            steps.append(time.perf_counter() - self.start)

    Trainer(model=model, args=args, train_dataset=rows, callbacks=[StepTimer()]).train()
    seconds = statistics.median(steps[1:])
    if cuda:
        reserved = torch.cuda.memory_reserved()
        context = _cuda_process_bytes() - reserved
        return {"measured_gb": (torch.cuda.max_memory_reserved() + context) / 1e9, "step_seconds": seconds,
                "allocated_gb": torch.cuda.max_memory_allocated() / 1e9, "context_gb": context / 1e9}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"measured_gb": max(peak - baseline, 0) / 1e9, "step_seconds": seconds}


def _cuda_process_bytes() -> int:
    """This process's memory on its GPU, from NVML (the CUDA context plus what the allocator holds)."""
    import pynvml

    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == os.getpid() and proc.usedGpuMemory:
                return int(proc.usedGpuMemory)
    finally:
        pynvml.nvmlShutdown()
    raise RuntimeError("NVML does not list this process: the CUDA context cannot be measured")


CPU: dict[str, Any] = {}  # this machine's SIMD kind and clock, read once


def estimate(case: dict[str, Any]) -> dict[str, float]:
    """The estimator's figures for a case: total GB, its CPU-only allocator part (heap retention and runtime
    overhead, absent from the live tensors), and seconds per step."""
    from advisor.estimate import EstimateConfig, estimate_memory, estimate_time
    from advisor.hardware import detect_hardware
    from advisor.model_profile import profile_from_config

    cuda = case.get("device") == "cuda"
    if not CPU:
        hw = detect_hardware()
        CPU.update(cpu_vector=hw.cpu_vector, cpu_ghz=hw.cpu_ghz, gpu=hw.gpus[0].name if hw.gpus else None)

    profile = profile_from_config(MODELS[case["model"]], name=case["model"], source="folder")
    method, bits = ("qlora", 8) if case["method"] == "qlora8" else (case["method"], None)
    cfg = EstimateConfig(method, batch_size=case["batch"], seq_len=case["seq"], bits=bits,
                         gradient_checkpointing=case["gc"], lora_rank=16, num_virtual_tokens=20,
                         device="cuda" if cuda else "cpu")
    memory = estimate_memory(profile, cfg)
    if cuda:
        time = estimate_time(profile, cfg, tokens=case["batch"] * case["seq"], device_name=CPU["gpu"])
    else:
        time = estimate_time(profile, cfg, tokens=case["batch"] * case["seq"], cpu_cores=1,
                             cpu_vector=CPU["cpu_vector"], cpu_ghz=CPU["cpu_ghz"])
    seconds = time.flops / time.flops_per_s  # unrounded (estimated_hours is rounded for display)
    cpu_only = memory.detail.get("cpu_heap_retention", 0.0) + memory.detail.get("cpu_runtime_overhead", 0.0)
    # this grid measures above the post-import baseline; the estimate counts the whole process
    above_baseline = memory.total_bytes / 1e9 - memory.detail.get("cpu_process_baseline", 0.0)
    return {"estimated_gb": above_baseline, "heap_gb": cpu_only,
            "step_seconds": seconds}


#: --real: the built-in SmolLM2-135M-Instruct trained by the runner itself on real data, every method, batch
#: sizes, lengths, packing on and off: (method, data, batch, max_length, packing).
DATA = ROOT / "examples" / "data"
REAL = [
    ("lora", "product_faq", 8, 256, True), ("lora", "product_faq", 8, 256, False),
    ("lora", "product_faq", 2, 256, True), ("lora", "support_style", 8, 512, True),
    ("lora", "long_text", 4, 512, True), ("lora", "long_text", 4, 512, False), ("lora", "long_text", 2, 1024, True),
    ("qlora", "product_faq", 8, 256, True), ("qlora", "long_text", 4, 512, True),
    ("dora", "support_style", 8, 256, True), ("full", "product_faq", 8, 256, True), ("full", "long_text", 4, 512, True),
    ("freeze", "support_style", 8, 256, True), ("p_tuning_v2", "support_style", 8, 256, False),
    ("prefix", "word_problems", 4, 256, False), ("prompt_tuning", "word_problems", 8, 256, False),
    ("p_tuning", "tool_calls", 8, 256, False), ("ia3", "tool_calls", 8, 256, True),
    ("ia3", "long_text", 4, 512, False), ("full", "word_problems", 2, 256, False),
]


def _long_text(folder: Path) -> Path:
    """Text examples of 100-900 tokens: runs of the general set's passages (a file the tests never train on)."""
    import random

    passages = (ROOT / "runner" / "assets" / "general.txt").read_text(encoding="utf-8").splitlines()
    rng = random.Random(0)
    path = folder / "long_text.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for _ in range(48):
            start, n = rng.randrange(len(passages)), rng.choice((4, 8, 16, 24, 36))
            f.write(json.dumps({"text": " ".join(passages[(start + i) % len(passages)] for i in range(n))}) + "\n")
    return path


def _real_answers(case: dict[str, Any], files: dict[str, Path]) -> dict[str, Any]:
    goals = {"product_faq": "knowledge", "support_style": "style", "word_problems": "reasoning",
             "tool_calls": "agent", "long_text": "style"}
    return {"version": 1, "goal": goals[case["data"]], "data": {"path": str(files[case["data"]])},
            "model": {"name_or_path": "builtin/SmolLM2-135M-Instruct"},
            "overrides": {"method": case["method"], "batch_size": case["batch"], "max_length": case["max_length"],
                          "packing": case["packing"], "gradient_accumulation": 1, "max_steps": case["steps"],
                          "save_steps": 10_000}}


def _real_files(work: Path) -> dict[str, Path]:
    files = {name: DATA / f"{name}.jsonl" for name in ("product_faq", "support_style", "word_problems", "tool_calls")}
    files["long_text"] = _long_text(work)
    return files


def real_model(out: str, steps: int) -> None:
    """Each case: `finetune-advisor train` on answers naming the case's settings; the run's peak resident memory,
    training seconds and tokens (events.jsonl) are saved, then compared with the recommendation's estimate."""
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="realcal-"))
    files = _real_files(work)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "HF_HUB_OFFLINE": "1"}
    measured = []
    for method, data, batch, length, packing in REAL:
        case = {"method": method, "data": data, "batch": batch, "max_length": length, "packing": packing,
                "steps": steps, "threads": int(env["OMP_NUM_THREADS"])}
        folder = work / f"{method}-{data}-{batch}-{length}-{packing}"
        folder.mkdir()
        (folder / "answers.yaml").write_text(json.dumps(_real_answers(case, files)))
        run = subprocess.run([str(Path(sys.executable).parent / "finetune-advisor"), "train", "--answers",
                              str(folder / "answers.yaml"), "--runs-dir", str(folder / "runs"), "--offline"],
                             capture_output=True, text=True, env=env)
        events = sorted((folder / "runs").glob("*/events.jsonl"))
        done = [json.loads(line) for line in events[0].read_text().splitlines() if '"done"' in line] if events else []
        if run.returncode != 0 or not done:
            print(f"{method:14} {data:14} failed: {(run.stderr.strip().splitlines() or ['no output'])[-1]}")
            continue
        measured.append({**case, **{k: done[-1][k] for k in ("peak_memory_gb", "train_seconds", "tokens", "steps")}})
        Path(out).write_text(json.dumps(measured, indent=2))  # after every case: a stopped run keeps its data
        print(f"measured {method} {data} {batch} {length} {packing}: {done[-1]['peak_memory_gb']} GB, "
              f"{done[-1]['train_seconds']} s", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    compare_real(out)


def compare_real(path: str) -> None:
    """The saved real-model measurements against the estimate the current code makes for each case."""
    import tempfile

    from advisor.answers import answers_from_dict
    from advisor.recommend import gather_inputs, recommend

    work = Path(tempfile.mkdtemp(prefix="realcal-"))
    files = _real_files(work)
    cases = json.loads(Path(path).read_text())
    print("built-in SmolLM2-135M-Instruct, CPU; memory: the run's peak RSS; time: the run's training seconds "
          "(validation included)\n")
    print(f"{'method':14} {'data':14} {'batch':>5} {'len':>5} {'pack':>4} {'batch tok':>9} {'meas GB':>8} "
          f"{'est GB':>7} {'error':>6} {'meas s':>7} {'est s':>7} {'error':>6}")
    rows = []
    for case in cases:
        raw = _real_answers(case, files)
        raw["hardware"] = {"gpus": [], "ram_gb": 24}  # the CPU: this machine's, detected
        rec = recommend(gather_inputs(answers_from_dict(raw), allow_network=False))
        est_gb, est_s = rec.memory["estimated_gb"], rec.time["seconds"]
        row = {**case, "batch_tokens": rec.memory["batch_tokens"], "estimated_gb": est_gb, "estimated_seconds": est_s,
               "memory_error": (est_gb - case["peak_memory_gb"]) / case["peak_memory_gb"],
               "time_error": (est_s - case["train_seconds"]) / case["train_seconds"]}
        rows.append(row)
        print(f"{case['method']:14} {case['data']:14} {case['batch']:5} {case['max_length']:5} "
              f"{'on' if case['packing'] else 'off':>4} {row['batch_tokens']:9} {case['peak_memory_gb']:8.3f} "
              f"{est_gb:7.2f} {row['memory_error']:+6.0%} {case['train_seconds']:7.1f} {est_s:7.1f} "
              f"{row['time_error']:+6.0%}")
    shutil.rmtree(work, ignore_errors=True)
    for key, name in (("memory_error", "memory"), ("time_error", "time")):
        errors = [abs(r[key]) for r in rows]
        if errors:
            print(f"{name}: median |error| {statistics.median(errors):.0%}, max |error| {max(errors):.0%} over "
                  f"{len(errors)} cases")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the whole grid (slower)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: models of 0.1B-1.5B in bf16 on GPU 0")
    parser.add_argument("--out", default="memory_calibration.json")
    parser.add_argument("--malloc-mmap-threshold", type=int, metavar="BYTES",
                        help="run the cases with glibc's MALLOC_MMAP_THRESHOLD_ fixed (no heap reuse of large blocks)")
    parser.add_argument("--real", action="store_true",
                        help="the built-in SmolLM2-135M-Instruct trained by the runner on real data (CPU)")
    parser.add_argument("--steps", type=int, default=8, help="--real: optimizer steps a case")
    parser.add_argument("--compare", metavar="FILE.json",
                        help="--real: compare measurements saved earlier with the current estimate (no training)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: measure one case in this process
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(json.loads(args.case))))
        return
    if args.real:
        if args.compare:
            compare_real(args.compare)
        else:
            real_model(args.out, args.steps)
        return
    live = bool(args.malloc_mmap_threshold)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if live:
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
    cuda = args.device == "cuda"
    what = ("allocator peak reserved + CUDA context" if cuda else
            "live tensors (estimate less heap retention and runtime overhead)" if live else "peak RSS")
    print(f"memory: {what}; time: seconds per optimizer step{'' if cuda else ', one core'}\n")
    print(f"{'model':10} {'method':14} {'batch':>5} {'seq':>5} {'gc':>3} {'meas GB':>8} {'est GB':>8} {'error':>6} "
          f"{'meas s':>7} {'est s':>7} {'error':>6}")
    results = []
    grid = (CUDA_FULL if args.full else CUDA_QUICK) if cuda else (FULL if args.full else QUICK)
    for model, method, batch, seq, gc in grid:
        case = {"model": model, "method": method, "batch": batch, "seq": seq, "gc": gc, "device": args.device}
        out = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True,
                             text=True, env=env)
        if out.returncode != 0:
            print(f"{model:10} {method:14} failed: {(out.stderr.strip().splitlines() or ['no output'])[-1]}")
            continue
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        est = estimate(case)
        gb = est["estimated_gb"] - (est["heap_gb"] if live else 0.0)
        row = {**case, **measured, "estimated_gb": gb, "estimated_step_seconds": est["step_seconds"],
               "memory_error": (gb - measured["measured_gb"]) / measured["measured_gb"],
               "time_error": (est["step_seconds"] - measured["step_seconds"]) / measured["step_seconds"]}
        results.append(row)
        Path(args.out).write_text(json.dumps(results, indent=2))  # after every case: a stopped run keeps its data
        print(f"{model:10} {method:14} {batch:5} {seq:5} {'on' if gc else 'off':>3} {row['measured_gb']:8.3f} "
              f"{gb:8.3f} {row['memory_error']:+6.0%} {row['step_seconds']:7.2f} {est['step_seconds']:7.2f} "
              f"{row['time_error']:+6.0%}", flush=True)
    if results:
        for key, name in (("memory_error", "memory"), ("time_error", "time")):
            errors = [abs(r[key]) for r in results]
            print(f"{name}: median |error| {statistics.median(errors):.0%}, max |error| {max(errors):.0%} over "
                  f"{len(errors)} cases ({'CUDA, bf16' if cuda else 'CPU, fp32, 1 thread'})")
        print("\nmeasured / estimated step time, median by method (a calibrated method factor is 1.00):")
        for method in sorted({r["method"] for r in results}):
            ratios = [r["step_seconds"] / r["estimated_step_seconds"] for r in results if r["method"] == method]
            print(f"  {method:14} {statistics.median(ratios):.2f}")

if __name__ == "__main__":
    main()
