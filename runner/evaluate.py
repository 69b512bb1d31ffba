"""Evaluation of a finished run against its base model, on exactly the run's saved test split.

Both models generate greedily for the same prompts (the context before the last answer: the reference
is never in the prompt); each output is scored by the goal's metrics (runner/metrics.py) and the pairs of
scores are tested (runner/stats.py). General ability: per-sentence loss of both models on a general set
that is not the user's task (runner/assets/general.txt, or evaluation.general_set), lower being better.
Speed: generation tokens/s of both (and of the merged model where the method merges). Resources come from
the run's events and the artifact's size. Results go to eval/, report.json and report.md; the adapter, the
checkpoints and the events are never touched.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from knowledge import MethodCard, load_evaluation
from knowledge.errors import InputError
from runner.data import prompt_and_reference, read_split
from runner.events import read_events
from runner.metrics import BINARY, METRICS
from runner.plot import write_loss_png
from runner.report import Report, write_report
from runner.rundir import RunDir, open_run_dir
from runner.scorecard import ScorecardInputs, build_scorecard
from runner.stats import direction, paired_binary, paired_continuous

__all__ = ["evaluate_run", "GENERAL_SET"]

GENERAL_SET = Path(__file__).parent / "assets" / "general.txt"
GEN_BATCH = 8


def _metrics_for(goal: str, chosen: str) -> list[str]:
    by_goal = load_evaluation().metrics_by_goal[goal]
    if chosen in ("auto", "", None):
        return list(by_goal)
    if chosen not in METRICS:
        raise InputError(f"unknown metric {chosen!r}", key="evaluation.metric", hint=", ".join(METRICS))
    return [chosen] + [m for m in by_goal if m != chosen]


def _general_texts(general_set: str) -> list[str]:
    path = GENERAL_SET if general_set in ("builtin", "", None) else Path(general_set)
    if not path.is_file():
        raise InputError("no such general-ability set", file=str(path), key="evaluation.general_set",
                         hint="a text file with one passage a line, or `builtin`")
    texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(texts) < 2:
        raise InputError("the general-ability set needs at least 2 lines", file=str(path))
    return texts


def _generate(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int, device: str) -> tuple[
        list[str], dict[str, float]]:
    """Greedy outputs for every prompt, batched with left padding; and the timing."""
    import torch

    tokenizer.padding_side = "left"
    outputs: list[str] = []
    generated = 0
    started = time.perf_counter()
    for i in range(0, len(prompts), GEN_BATCH):
        batch = tokenizer(prompts[i: i + GEN_BATCH], return_tensors="pt", padding=True, add_special_tokens=False)
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.no_grad():
            # use_cache stays on: Llama-family models with prefix tuning fail in generate(use_cache=False)
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        new = out[:, batch["input_ids"].shape[1]:]
        for row in new:
            ids = row.tolist()
            if tokenizer.eos_token_id in ids:
                ids = ids[: ids.index(tokenizer.eos_token_id)]
            ids = [t for t in ids if t != tokenizer.pad_token_id]
            generated += len(ids)
            outputs.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
    seconds = time.perf_counter() - started
    tokenizer.padding_side = "right"
    return outputs, {"seconds": round(seconds, 3), "generated_tokens": generated,
                     "tokens_per_s": round(generated / max(seconds, 1e-9), 2),
                     "latency_s_per_example": round(seconds / max(len(prompts), 1), 4)}


#: Speed is timed on this many prompts, generating exactly this many new tokens with every model: timing the
#: models' own outputs would favour whichever model talks longer (per-call overhead spread over more tokens).
SPEED_PROMPTS, SPEED_TOKENS = 8, 32


def _speed(model: Any, tokenizer: Any, prompts: list[str], device: str) -> dict[str, float]:
    import torch

    tokenizer.padding_side = "left"
    batch = tokenizer(prompts[:SPEED_PROMPTS], return_tensors="pt", padding=True, add_special_tokens=False)
    batch = {k: v.to(device) for k, v in batch.items()}
    with torch.no_grad():
        model.generate(**batch, max_new_tokens=2, min_new_tokens=2, do_sample=False, use_cache=True,
                       pad_token_id=tokenizer.pad_token_id)  # warm-up
        started = time.perf_counter()
        model.generate(**batch, max_new_tokens=SPEED_TOKENS, min_new_tokens=SPEED_TOKENS, do_sample=False,
                       use_cache=True, pad_token_id=tokenizer.pad_token_id)
        seconds = time.perf_counter() - started
    tokenizer.padding_side = "right"
    n = len(batch["input_ids"])
    return {"tokens_per_s": round(n * SPEED_TOKENS / max(seconds, 1e-9), 2), "seconds": round(seconds, 4),
            "prompts": n, "new_tokens_each": SPEED_TOKENS, "latency_s_per_example": round(seconds / n, 4)}


def _text_losses(model: Any, tokenizer: Any, texts: list[str], device: str) -> list[float]:
    """Mean token negative log-likelihood of each text (on the reference text, never on model output)."""
    import torch

    losses = []
    for text in texts:
        ids = tokenizer(text, return_tensors="pt").input_ids.to(device)
        with torch.no_grad():
            losses.append(float(model(input_ids=ids, labels=ids).loss))
    return losses


def _size_gb(path: Path) -> float | None:
    if not path.exists():
        return None
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9


def _deployment_kind(card: MethodCard) -> str:
    if card.full_model:
        return "full_model"
    if card.serving.mergeable or card.serving.vllm_adapter:
        return "mergeable_and_served_by_vllm" if card.serving.vllm_adapter else "mergeable"
    return "not_mergeable"


def evaluate_run(run_dir: str | Path, *, progress: Any = None) -> Report:
    """Evaluate the run; write eval/, report.json and report.md; return the report. Third-party warnings and
    logs go to eval/evaluate.log."""
    from runner.quiet import third_party_output_to

    run = open_run_dir(run_dir)
    with third_party_output_to(run.eval_log):
        return _evaluate(run, progress or (lambda message: None))


def _evaluate(run: RunDir, say: Any) -> Report:
    plan = run.read_plan()
    method, card = plan.method, plan.card
    artifact = run.artifact(card)
    if not artifact.is_dir():
        raise InputError("the run has no trained model yet", file=str(run.path),
                         hint=f"finish it first: finetune-advisor train --resume {run.path}")
    test_rows = read_split(run, "test")
    if not test_rows:
        raise InputError("the run's test split is empty", file=str(run.split("test")),
                         hint="give data.test_path, or more examples so that 10% can be held out")
    metrics = _metrics_for(plan.goal, plan.evaluation.metric)
    general = _general_texts(plan.evaluation.general_set)

    import torch

    from runner.model import load_model, load_tokenizer, load_trained, select_device

    torch.manual_seed(plan.seed)
    device = select_device()
    base_name = plan.model.name_or_path
    remote = plan.model.trust_remote_code
    tokenizer = load_tokenizer(base_name, remote)
    pairs = [prompt_and_reference(row, tokenizer) for row in test_rows]
    prompts, references = [p for p, _ in pairs], [r for _, r in pairs]
    settings = load_evaluation()
    longest = max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references)
    max_new = min(settings.max_new_tokens_cap, longest + settings.max_new_tokens_margin)

    say(f"base model: generating for {len(prompts)} test examples")
    base = load_model(base_name, device=device, method="lora", bits=None, trust_remote_code=remote)
    base.eval()
    base_out, base_timing = _generate(base, tokenizer, prompts, max_new, device)
    base_speed = _speed(base, tokenizer, prompts, device)
    base_general = _text_losses(base, tokenizer, general, device)
    del base

    say("tuned model: generating for the same examples")
    tuned = load_trained(run, plan, device=device)
    tuned_out, tuned_timing = _generate(tuned, tokenizer, prompts, max_new, device)
    tuned_speed = _speed(tuned, tokenizer, prompts, device)
    tuned_general = _text_losses(tuned, tokenizer, general, device)
    merged_speed = None
    if not card.full_model and card.mergeable and not card.quantized:  # the merged model is what is served
        say("merged model: timing generation")
        merged = tuned.merge_and_unload()
        merged.eval()
        merged_speed = _speed(merged, tokenizer, prompts, device)
        del merged
    del tuned

    # ---- per-example scores, written side by side
    scores = {name: ([METRICS[name](o, r) for o, r in zip(base_out, references, strict=True)],
                     [METRICS[name](o, r) for o, r in zip(tuned_out, references, strict=True)]) for name in metrics}
    run.eval_dir.mkdir(exist_ok=True)
    for which, outputs, index in (("base", base_out, 0), ("tuned", tuned_out, 1)):
        lines = [json.dumps({"index": i, "source_index": row.get("source_index"), "prompt": prompts[i],
                             "reference": references[i], "output": outputs[i],
                             "scores": {m: scores[m][index][i] for m in metrics}}, ensure_ascii=False)
                 for i, row in enumerate(test_rows)]
        run.predictions(which).write_text("\n".join(lines) + "\n", encoding="utf-8")

    # ---- statistics
    results: dict[str, Any] = {}
    for name in metrics:
        b, t = scores[name]
        result = paired_binary(b, t) if name in BINARY else paired_continuous(b, t, seed=plan.seed)
        results[name] = {"kind": "binary" if name in BINARY else "continuous", **_as_dict(result)}
    primary = metrics[0]
    general_stats = paired_continuous(base_general, tuned_general, seed=plan.seed)
    ppl_base = math.exp(sum(base_general) / len(base_general))
    ppl_tuned = math.exp(sum(tuned_general) / len(tuned_general))

    # ---- costs, from the run
    done: dict[str, Any] = next((e for e in reversed(read_events(run.events)) if e.get("kind") == "done"), {})
    base_path = Path(base_name)
    base_gb = _size_gb(base_path) if base_path.is_dir() else ((plan.model.params_b or 0) * 2 or None)
    served = merged_speed or tuned_speed
    inputs = ScorecardInputs(
        metric=primary, tuned_metric=results[primary]["tuned_mean"], base_metric=results[primary]["base_mean"],
        p_value=results[primary]["p_value"], ci_low=results[primary]["ci_low"], ci_high=results[primary]["ci_high"],
        perplexity_increase=ppl_tuned / ppl_base - 1,
        throughput_ratio=served["tokens_per_s"] / base_speed["tokens_per_s"] if base_speed["tokens_per_s"] else None,
        peak_memory_gb=done.get("peak_memory_gb"), available_gb=plan.available_gb,
        training_hours=done["train_seconds"] / 3600 if "train_seconds" in done else None,
        artifact_gb=_size_gb(artifact), base_model_gb=base_gb, deployment_kind=_deployment_kind(card))
    scorecard = build_scorecard(inputs)
    found = direction(results[primary]["p_value"], results[primary]["ci_low"], results[primary]["ci_high"])
    report = Report(
        run=str(run.path), method=method, goal=plan.goal, model=base_name, device=device,
        test_examples=len(test_rows), test_split=str(run.split("test")),
        decoding={"strategy": "greedy", "max_new_tokens": max_new, "seed": plan.seed},
        primary_metric=primary, metrics=results, significant=found == "better",
        general_ability={"set": plan.evaluation.general_set, "texts": len(general),
                         "perplexity_base": round(ppl_base, 4), "perplexity_tuned": round(ppl_tuned, 4),
                         "perplexity_increase": round(ppl_tuned / ppl_base - 1, 4),
                         "loss_difference": _as_dict(general_stats),
                         "direction": "lower loss and perplexity are better"},
        speed={"base": base_speed, "tuned_unmerged": tuned_speed, "tuned_merged": merged_speed,
               "method": f"{SPEED_PROMPTS} test prompts, exactly {SPEED_TOKENS} new tokens each, greedy",
               "evaluation_generation": {"base": base_timing, "tuned": tuned_timing}},
        resources={"train_seconds": done.get("train_seconds"), "peak_memory_gb": done.get("peak_memory_gb"),
                   "artifact_gb": inputs.artifact_gb, "base_model_gb": base_gb},
        scorecard=scorecard, verdict=scorecard["verdict"],
        warnings=[w for r in results.values() for w in r["warnings"]],
    )
    events = read_events(run.events)
    write_loss_png(run.loss_png,
                   [(e["step"], float(e["loss"])) for e in events if e["kind"] == "step" and
                    isinstance(e.get("loss"), (int, float))],
                   [(e["step"], float(e["eval_loss"])) for e in events if e["kind"] == "eval"])
    write_report(run, report)
    say(f"report: {run.report_md}")
    return report


def _as_dict(result: Any) -> dict[str, Any]:
    out = dict(vars(result))
    out["warnings"] = list(out.get("warnings", ()))
    return out
