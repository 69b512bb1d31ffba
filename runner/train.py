"""Training with transformers' Trainer, reporting to events.jsonl; checkpoints, clean stop, resume.

run_training() is what the training process (runner.worker) runs. It returns the exit code:
0 done (or stopped cleanly on request), 1 the run failed, 2 bad input found while preparing.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from knowledge import OPTIMIZERS, load_methods, method_card
from knowledge.errors import InputError
from runner.data import encode_rows, prepare_splits, read_split
from runner.distributed import process_rank
from runner.events import EventLog
from runner.plan import Plan
from runner.rundir import RunDir, safetensors_intact

__all__ = ["StopFlag", "last_complete_checkpoint", "oom_advice", "run_training"]

GB = 1e9


class StopFlag:
    """Set by SIGINT/SIGTERM or by a STOP file in the run directory: checkpoint, then stop."""

    def __init__(self, run: RunDir) -> None:
        self.run, self.requested = run, False

    def __bool__(self) -> bool:
        return self.requested or self.run.stop_request.exists()


def _checkpoint_complete(path: Path) -> bool:
    try:
        json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return all(safetensors_intact(f) for f in path.glob("*.safetensors"))


def last_complete_checkpoint(folder: Path, skipped: list[str] | None = None) -> Path | None:
    """The newest checkpoint-N that is whole: its trainer state written and parseable, every safetensors file
    intact (a kill -9 or a full disk during a save leaves a partial one). Newer damaged ones are named in
    `skipped`."""
    if not folder.is_dir():
        return None
    found = []
    for path in folder.glob("checkpoint-*"):
        try:
            found.append((int(path.name.split("-")[-1]), path))
        except ValueError:
            continue
    for _, path in sorted(found, reverse=True):
        if _checkpoint_complete(path):
            return path
        if skipped is not None:
            skipped.append(path.name)
    return None


def _report_to(run: RunDir, plan: Plan) -> list[str]:
    """The Trainer's own TensorBoard logs, in the run's tensorboard/ folder, when tensorboard (or tensorboardX) is
    installed and the answers did not turn them off (overrides.tensorboard: false)."""
    import importlib.util

    installed = any(importlib.util.find_spec(name) for name in ("tensorboard", "tensorboardX"))
    if not plan.training.tensorboard or not installed:  # transformers' own test (is_tensorboard_available)
        return []
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.tensorboard)  # read by transformers' TensorBoardCallback
    return ["tensorboard"]


def oom_advice(plan: Plan) -> str:
    """The concrete next step after running out of GPU memory, in the order that costs least."""
    hp = plan.hyperparameters
    if hp["batch_size"] > 1:
        return (f"set overrides.batch_size: {hp['batch_size'] // 2} and overrides.gradient_accumulation: "
                f"{hp['gradient_accumulation'] * 2} (same effective batch, half the activations)")
    if not hp.get("gradient_checkpointing") and "gradient_checkpointing" not in plan.incompatible_with:
        return "set overrides.gradient_checkpointing: true (about 30% slower, far fewer activations kept)"
    card = method_card(plan.method)
    if not card.quantized and (card.lora_like or card.full_model):
        return "set overrides.method: qlora (the base model in 4-bit, about a quarter of the memory)"
    return f"set overrides.max_length: {max(128, hp['max_length'] // 2)} (longer examples will be truncated)"


def _memory_gb(device: str) -> float:
    """Memory in use now: allocated on the GPU, the process's resident memory on the CPU."""
    import torch

    if device == "cuda":
        return round(torch.cuda.max_memory_allocated() / GB, 3)
    import psutil

    return round(psutil.Process().memory_info().rss / GB, 3)


def _peak_memory_gb(device: str) -> float:
    """The run's peak: the GPU allocator's, or on the CPU the process's largest resident memory so far (what the
    estimate of advisor/estimate.py predicts), not the memory at the end."""
    if device == "cuda":
        return _memory_gb(device)
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak * (1 if sys.platform == "darwin" else 1024) / GB, 3)


def _collator(pad_id: int, multiple: int, packing: bool = False) -> Any:
    import torch

    def flatten(batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for b in batch:
            ids += b["input_ids"]
            labels += [-100] + b["labels"][1:]  # no loss across the boundary into the next example
            positions += list(range(len(b["input_ids"])))
        return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]),
                "position_ids": torch.tensor([positions])}

    def collate(batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        if packing:
            return flatten(batch)
        longest = max(len(b["input_ids"]) for b in batch)
        longest = -(-longest // multiple) * multiple
        out: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
        for b in batch:
            pad = longest - len(b["input_ids"])
            out["input_ids"].append(b["input_ids"] + [pad_id] * pad)
            out["attention_mask"].append(b["attention_mask"] + [0] * pad)
            out["labels"].append(b["labels"] + [-100] * pad)
        return {k: torch.tensor(v, dtype=torch.long) for k, v in out.items()}

    return collate


def _all_processes(value: float, op: str) -> float:
    """`value` combined over the training processes (sum or max); itself with one process."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return float(tensor.item())


def _callback(events: EventLog, stop: StopFlag, device: str, counters: dict[str, Any]) -> Any:
    from transformers import TrainerCallback

    class EventsCallback(TrainerCallback):
        """Turns Trainer's hooks into events; stops on request and on a NaN or infinite loss."""

        def __init__(self) -> None:
            self.last_time = time.time()
            self.last_tokens = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            events.emit("phase", phase="train", step=state.global_step, max_steps=state.max_steps)
            self.last_time = time.time()
            self.last_tokens = _all_processes(counters["tokens"], "sum")

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            # every process stops at the same step (a stop request reaches the first process only)
            if _all_processes(1.0 if stop else 0.0, "max"):
                counters["stopped"] = True
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            logs = logs or {}
            if "loss" not in logs:
                return
            now = time.time()
            seen = _all_processes(counters["tokens"], "sum")  # every process logs at the same step
            tokens = seen - self.last_tokens
            rate = tokens / max(now - self.last_time, 1e-9)
            self.last_time, self.last_tokens = now, seen
            loss = float(logs["loss"])
            events.emit("step", step=state.global_step, max_steps=state.max_steps,
                        epoch=round(float(state.epoch or 0), 4),
                        loss=loss, learning_rate=float(logs.get("learning_rate", 0.0)),
                        grad_norm=float(logs["grad_norm"]) if logs.get("grad_norm") is not None else None,
                        tokens_per_s=round(rate, 1), memory_gb=_memory_gb(device))
            if not math.isfinite(loss):
                counters["nan_step"] = state.global_step
                control.should_save = False
                control.should_training_stop = True

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None,
                        **kwargs: Any) -> None:
            if metrics and "eval_loss" in metrics:
                events.emit("eval", step=state.global_step, eval_loss=float(metrics["eval_loss"]))

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            events.emit("phase", phase="checkpoint", step=state.global_step,
                        path=str(Path(args.output_dir) / f"checkpoint-{state.global_step}"))

    return EventsCallback()


def _checkpointing_args(arguments: Any, on: bool) -> dict[str, Any]:
    """Gradient checkpointing settings under the name this transformers uses (activation_* since 5.x)."""
    prefix = "activation" if "activation_checkpointing" in arguments.__dataclass_fields__ else "gradient"
    return {f"{prefix}_checkpointing": on, f"{prefix}_checkpointing_kwargs": {"use_reentrant": False}}


def _check_disk(run: RunDir, plan: Plan, model: Any, total_steps: int) -> None:
    """A checkpoint holds the model's weights (all of them for methods that train the whole model, else the
    trained ones) and AdamW's two states per trained weight, in the weights' dtype. The Trainer saves every
    save_steps and at the last step, and writes a new checkpoint before it deletes the oldest beyond
    save_total_limit; so a run keeps at most that many plus one, and never more than it saves. The final
    artifact comes on top: the whole model, or the trained weights."""
    params = list(model.parameters())
    trained = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    weights = sum(p.numel() * p.element_size() for p in params) if method_card(plan.method).full_model else trained
    saves = max(1, math.ceil(total_steps / plan.training.save_steps))
    kept = min(plan.training.save_total_limit + 1, saves)
    needed = (weights + 2 * trained) * kept + weights + 0.2 * GB
    free = shutil.disk_usage(run.path).free
    if free < needed:
        raise InputError(f"not enough free disk for checkpoints: about {needed / GB:.1f} GB needed "
                         f"({kept} checkpoint{'s' if kept > 1 else ''} and the trained model), "
                         f"{free / GB:.1f} GB free", file=str(run.path),
                         hint="free some space, choose another --runs-dir, or save less often "
                              "(overrides.save_steps)")


def run_training(run: RunDir, *, resume: bool = False, stop: StopFlag | None = None,
                 on_trained: Callable[[Any, Any], None] | None = None) -> int:
    """Train the run's plan; `on_trained(model, tokenizer)` sees the trained model before it is released."""
    events = EventLog(run.events, write=process_rank()[0] == 0)  # the first process alone writes events
    if stop is None:  # not `stop or ...`: a StopFlag is falsy until a stop is requested
        stop = StopFlag(run)
    try:
        return _run(run, events, resume, stop, on_trained)
    except InputError as exc:
        events.emit("error", message=str(exc), exit_code=2)
        events.emit("done", status="failed", exit_code=2, message=str(exc))
        return 2
    except Exception as exc:  # reported as a failed run (exit 1), with the type and message
        import torch

        plan = run.read_plan()
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            message = f"out of GPU memory: {oom_advice(plan)}"
        elif _disk_full(exc):
            cause = str(exc).splitlines()[0] if str(exc) else "ENOSPC"
            message = f"the disk is full ({type(exc).__name__}: {cause}): {run.disk_full_advice()}"
        else:
            message = f"{type(exc).__name__}: {exc}"
        try:
            events.emit("error", message=message, exit_code=1)
            events.emit("done", status="failed", exit_code=1, message=message)
        except OSError:  # a full disk may refuse the event too: the worker log (stderr) still says it
            sys.stderr.write(message + "\n")
        return 1


def _disk_full(exc: BaseException | None) -> bool:
    """Whether the failure, or one it came from, is a full disk (ENOSPC; safetensors and torch wrap it)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _run(run: RunDir, events: EventLog, resume: bool, stop: StopFlag,
         on_trained: Callable[[Any, Any], None] | None) -> int:
    plan = run.read_plan()
    hp = plan.hyperparameters
    events.emit("phase", phase="prepare", resume=resume)

    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    from runner.methods import apply_method, trainable_count
    from runner.model import compute_dtype_name, load_model, load_tokenizer, select_device

    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
    set_seed(plan.seed)
    rank, local_rank, world = process_rank()
    device = select_device()
    if world > 1 and device == "cuda":
        torch.cuda.set_device(local_rank)  # one GPU a process
    dtype = compute_dtype_name(device, hp.get("precision"))
    counts = prepare_splits(plan, run)
    events.emit("phase", phase="data", **counts)
    tokenizer = load_tokenizer(plan.model.name_or_path, plan.model.trust_remote_code)
    train_rows, train_stats = encode_rows(read_split(run, "train"), tokenizer, hp["max_length"])
    val_rows, _ = encode_rows(read_split(run, "validation"), tokenizer, hp["max_length"])
    if not train_rows:
        raise InputError(f"every training example is longer than max_length {hp['max_length']} before its answer "
                         "begins: nothing is left to learn from", file=plan.data.path,
                         hint="raise overrides.max_length, or shorten the prompts")
    if train_stats.truncated:
        events.emit("warning", message=f"{train_stats.truncated} of {train_stats.examples} training examples were "
                    f"truncated to max_length {hp['max_length']} tokens; {train_stats.dropped} had no answer "
                    "left and were dropped")

    model = load_model(plan.model.name_or_path, device=device, method=plan.method, bits=hp.get("bits"),
                       trust_remote_code=plan.model.trust_remote_code,
                       gradient_checkpointing=bool(hp.get("gradient_checkpointing")))
    # no KV cache while training: it costs memory, and a cache turns off the packed-sequence attention mask
    model.config.use_cache = False
    model = apply_method(model, plan)
    trainable, total = trainable_count(model)
    # padding-free batches: examples flattened into one row, position ids restarting per example; transformers
    # builds a block-diagonal mask from them (with no KV cache), so examples never attend to each other
    packing = load_methods()[plan.method].packs(bool(hp.get("packing")), hp["batch_size"])
    events.emit("phase", phase="model", device=device, dtype=dtype, trainable_params=trainable, total_params=total,
                train_examples=len(train_rows), validation_examples=len(val_rows), packing=packing)

    steps_per_epoch = max(1, math.ceil(len(train_rows) / (hp["batch_size"] * hp["gradient_accumulation"] * world)))
    total_steps = plan.training.max_steps or steps_per_epoch * hp["epochs"]
    _check_disk(run, plan, model, total_steps)
    args = TrainingArguments(
        output_dir=str(run.checkpoints),
        per_device_train_batch_size=hp["batch_size"], per_device_eval_batch_size=hp["batch_size"],
        gradient_accumulation_steps=hp["gradient_accumulation"], learning_rate=hp["learning_rate"],
        num_train_epochs=hp["epochs"], max_steps=plan.training.max_steps or -1,
        lr_scheduler_type=plan.training.lr_scheduler,
        warmup_steps=math.ceil(plan.training.warmup_ratio * total_steps),
        weight_decay=plan.training.weight_decay, max_grad_norm=plan.training.max_grad_norm,
        logging_steps=plan.training.logging_steps, logging_nan_inf_filter=False,
        save_strategy="steps", save_steps=plan.training.save_steps,
        save_total_limit=plan.training.save_total_limit,
        eval_strategy="steps" if val_rows else "no", eval_steps=plan.training.eval_steps,
        bf16=dtype == "bfloat16", fp16=dtype == "float16",
        **_checkpointing_args(TrainingArguments, bool(hp.get("gradient_checkpointing"))),
        optim=OPTIMIZERS[hp.get("optimizer", "adamw")], seed=plan.seed, data_seed=plan.seed,
        report_to=_report_to(run, plan), remove_unused_columns=False, dataloader_num_workers=0, use_cpu=device == "cpu",
        disable_tqdm=True, log_level="warning",
        ddp_find_unused_parameters=False if world > 1 else None,  # every trained parameter takes part each step
    )
    counters: dict[str, Any] = {"tokens": 0, "stopped": False, "nan_step": None}

    class CountingTrainer(Trainer):
        """Counts the real (unpadded) tokens it trains on, for tokens per second."""

        def training_step(self, model: Any, inputs: dict[str, Any], *a: Any, **kw: Any) -> Any:
            mask = inputs.get("attention_mask")
            counters["tokens"] += int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())
            return super().training_step(model, inputs, *a, **kw)

    trainer = CountingTrainer(
        model=model, args=args, train_dataset=train_rows, eval_dataset=val_rows or None,
        data_collator=_collator(tokenizer.pad_token_id, 8 if device == "cuda" else 1, packing),
        callbacks=[_callback(events, stop, device, counters)])
    skipped: list[str] = []
    checkpoint = last_complete_checkpoint(run.checkpoints, skipped) if resume else None
    if skipped:
        events.emit("warning", message=f"damaged checkpoint(s) skipped: {', '.join(skipped)} (cut short or "
                    f"unreadable); resuming from {checkpoint.name if checkpoint else 'the start'}")
    if resume and checkpoint is None:
        events.emit("warning", message="no complete checkpoint to resume from: training starts again")
    if checkpoint is not None:
        events.emit("phase", phase="resume", checkpoint=str(checkpoint))
    started = time.time()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = time.time() - started
    tokens = int(_all_processes(counters["tokens"], "sum"))
    summary = {"steps": trainer.state.global_step, "max_steps": trainer.state.max_steps,
               "train_seconds": round(seconds, 2), "train_loss": float(result.training_loss),
               "tokens": tokens, "tokens_per_s": round(tokens / max(seconds, 1e-9), 1),
               "peak_memory_gb": _peak_memory_gb(device), "trainable_params": trainable, "device": device,
               "processes": world}

    if counters["nan_step"] is not None:
        message = (f"the loss became NaN or infinite at step {counters['nan_step']}: training diverged. Lower the "
                   f"learning rate (now {hp['learning_rate']:g}; try {hp['learning_rate'] / 10:g}), check the data "
                   "for empty or garbled answers, and on fp16 GPUs prefer bf16 or fp32")
        events.emit("error", message=message, exit_code=1)
        events.emit("done", status="failed", exit_code=1, message=message, **summary)
        return 1
    if counters["stopped"]:
        events.emit("done", status="stopped", exit_code=0, checkpoint=str(last_complete_checkpoint(run.checkpoints)),
                    message=f"stopped on request at step {trainer.state.global_step}; continue with: "
                            f"finetune-advisor train --resume {run.path}", **summary)
        run.stop_request.unlink(missing_ok=True)
        return 0

    events.emit("phase", phase="save")
    target = run.artifact(method_card(plan.method))
    if world > 1:  # the trainer gathers sharded (FSDP, ZeRO-3) weights; the first process writes them
        trainer.save_model(str(target))
    else:
        model.save_pretrained(str(target))
    if rank == 0:
        tokenizer.save_pretrained(str(target))
        from runner.model_card import write_model_card

        write_model_card(run, target)
    if on_trained is not None and world == 1:
        on_trained(model, tokenizer)
    events.emit("done", status="done", exit_code=0, artifact=str(target), **summary)
    return 0
