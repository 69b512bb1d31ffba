"""Evaluation of a finished run against its base model, on exactly the run's saved test split.

The models generate greedily for the same prompts (the context before the last answer: the reference is never
in the prompt), with every decoding setting stated and each output cut at the model's own end tokens
(runner/generation.py); each output is scored by the goal's metrics (runner/metrics.py) and the pairs of scores
are tested (runner/stats.py). The tuned model is compared with the base it trained on: for QLoRA that is the
base loaded in 4-bit, and the 4-bit base is compared with the 16-bit one apart, so that quantization's effect
is never blamed on fine-tuning. General ability: token-weighted perplexity on a general set that is not the
user's task (runner/assets/general.txt, or evaluation.general_set), with a paired interval. Speed: generation
tokens/s of the base, the tuned model and the merged one where the method merges, timed in alternating rounds.
Resources come from the run's events and the artifact's size. Results go to eval/, report.json and report.md;
the adapter, the checkpoints and the events are never touched.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from knowledge import MethodCard, load_evaluation
from knowledge.errors import InputError
from runner.data import prompt_and_reference, read_split, read_split_summary, readable_prompt
from runner.events import read_events
from runner.metrics import BINARY, METRICS, score
from runner.plan import Plan
from runner.plot import write_loss_png
from runner.power import p_text, smallest_difference
from runner.records import general_passages
from runner.report import Report, write_report
from runner.rundir import RunDir, open_run_dir, saved_model_intact
from runner.scorecard import ScorecardInputs, build_scorecard
from runner.stats import explain, paired_binary, paired_continuous

__all__ = ["evaluate_run"]


def _metrics_for(goal: str, chosen: str) -> list[str]:
    by_goal = load_evaluation().metrics_by_goal[goal]
    if chosen in ("auto", "", None):
        return list(by_goal)
    if chosen not in METRICS:
        raise InputError(f"unknown metric {chosen!r}", key="evaluation.metric", hint=", ".join(METRICS))
    return [chosen] + [m for m in by_goal if m != chosen]


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


def evaluate_run(run_dir: str | Path, *, progress: Any = None, base_from: Path | None = None) -> Report:
    """Evaluate the run; write eval/, report.json and report.md; return the report. Third-party warnings and
    logs go to eval/evaluate.log. `base_from`: a file of the base model's measurements (outputs, timing and
    general-text losses) shared by runs scored on the same examples, as a pilot's candidates are: used when it
    was made for the same model, prompts, decoding, general text and device, else measured and written there."""
    import fcntl

    from runner.quiet import third_party_output_to

    run = open_run_dir(run_dir)
    try:
        fd = os.open(run.eval_lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InputError(f"cannot write in the run directory ({exc.strerror})", file=str(run.path),
                         hint="evaluation writes eval/ and report.json there: make it writable") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InputError("another process is evaluating this run", file=str(run.path),
                             hint="wait for it to finish: its report.json and report.md appear in the run "
                                  "directory (two evaluations at once would also slow each other's speed "
                                  "measurement)") from None
        with third_party_output_to(run.eval_log):
            return _evaluate(run, progress or (lambda message: None), base_from)
    finally:
        os.close(fd)


@contextmanager
def _merged(model: Any) -> Iterator[None]:
    """The adapter folded into the weights, as a merged export serves it; unfolded again afterwards."""
    model.merge_adapter()
    try:
        yield
    finally:
        model.unmerge_adapter()


class _Measured:
    """What each model variant produced: outputs, generation timing, general-set losses, speed."""

    def __init__(self) -> None:
        self.outputs: dict[str, list[str]] = {}
        self.timing: dict[str, dict[str, float]] = {}
        self.losses: dict[str, list[tuple[float, int]]] = {}
        self.speed: dict[str, dict[str, Any]] = {}
        self.base_from: str | None = None
        """The file the base's outputs, timing and losses were read from, when they were not measured anew."""


def _base_key(plan: Plan, prompts: list[str], general: list[str], max_new: int, device: str) -> str:
    """What the base model's measurements depend on: the model (and, for a folder, its files' sizes and times),
    the prompts, the decoding, the general text, the device and the library versions. Not the run's training
    precision: the base is loaded in the device's own dtype whatever the run trained in."""
    import hashlib

    import torch
    import transformers

    where = Path(plan.model.name_or_path)
    files = sorted((str(f.relative_to(where)), f.stat().st_size, f.stat().st_mtime_ns)
                   for f in where.rglob("*") if f.is_file()) if where.is_dir() else []
    facts = [plan.model.name_or_path, plan.model.trust_remote_code, files, prompts, general, max_new, device,
             plan.seed, torch.__version__, transformers.__version__]
    return hashlib.sha256(json.dumps(facts, ensure_ascii=False).encode()).hexdigest()


def _read_base(path: Path | None, key: str) -> dict[str, Any] | None:
    """The base's measurements saved in `path` for the same inputs; None when there are none (no file, another
    key, a body cut short or not in the shape _write_base gives)."""
    if path is None or not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("key") != key:
            return None
        return {"settings": dict(saved["settings"]), "outputs": [str(o) for o in saved["outputs"]],
                "timing": dict(saved["timing"]), "losses": [(float(nll), int(n)) for nll, n in saved["losses"]]}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _write_base(path: Path, key: str, measured: _Measured, settings: dict[str, Any]) -> None:
    """Written whole, then moved into place: a reader never sees half a file."""
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps({"key": key, "settings": settings, "outputs": measured.outputs["base"],
                                "timing": measured.timing["base"], "losses": measured.losses["base"]},
                               ensure_ascii=False), encoding="utf-8")
    os.replace(part, path)


def _measure(run: RunDir, card: MethodCard, tokenizer: Any, device: str, prompts: list[str], general: list[str],
             max_new: int, say: Callable[[str], None],
             base_from: Path | None = None) -> tuple[_Measured, dict[str, Any]]:
    """Generate, score losses and time speed with every variant the comparison needs: base (16-bit), tuned, and
    for QLoRA the 4-bit base it trained on; the merged model where the method merges. Two models are held at
    once only for full fine-tuning (whose training needed far more memory than two copies for inference).
    The base's measurements come from `base_from` when it holds them for the same inputs (see evaluate_run);
    the base model is then loaded only where the speed timing needs it."""
    import torch

    from runner.generation import Timed, decoding, dtype_note, generate_all, plain, text_losses
    from runner.generation import time_speeds as time_all
    from runner.model import compute_dtype_name, load_model, load_trained

    plan = run.read_plan()
    torch.manual_seed(plan.seed)
    m = _Measured()
    timed = plan.evaluation.speed

    def time_speeds(tokenizer: Any, prompts: list[str], device: str, settings: dict[str, Any],
                    variants: dict[str, Timed]) -> dict[str, dict[str, Any]]:
        """Rounds of timed generation, unless the answers turned it off (evaluation.speed: false)."""
        if not timed:
            return {}
        say("timing generation (alternating rounds)")
        return time_all(tokenizer, prompts, device, settings, variants)

    def quality(name: str, model: Any) -> None:
        m.outputs[name], m.timing[name] = generate_all(model, tokenizer, prompts, settings, device)
        started = time.perf_counter()
        m.losses[name] = text_losses(model, tokenizer, general, device)
        m.timing[name]["general_seconds"] = round(time.perf_counter() - started, 3)

    key = _base_key(plan, prompts, general, max_new, device) if base_from is not None else ""
    reused = _read_base(base_from, key)
    base: Any = None
    if reused is None or (timed and (card.full_model or (card.quantized and card.mergeable))):
        if reused is None:
            say(f"base model: generating for {len(prompts)} test examples")
        base = load_model(plan.model.name_or_path, device=device, method="lora", bits=None,
                          trust_remote_code=plan.model.trust_remote_code).eval()
    trained_in = compute_dtype_name(device, plan.hyperparameters.get("precision"))
    if reused is not None:
        say(f"base model: its outputs on these examples, measured for an earlier run ({base_from})")
        settings = reused["settings"] | {"dtype_note": dtype_note(reused["settings"]["dtype"], trained_in)}
        m.outputs["base"], m.timing["base"], m.losses["base"] = reused["outputs"], reused["timing"], reused["losses"]
        m.base_from = str(base_from)
    else:
        settings = decoding(base, tokenizer, max_new, plan.seed, trained_in=trained_in)
        quality("base", base)
        if base_from is not None:
            _write_base(base_from, key, m, settings)
    if card.full_model:
        say("tuned model: generating for the same examples")
        tuned = load_trained(run, plan, device=device)
        quality("tuned", tuned)
        m.speed = time_speeds(tokenizer, prompts, device, settings, {"base": plain(base), "tuned": plain(tuned)})
        return m, settings
    if card.quantized:
        if card.mergeable and timed:  # served merged into the 16-bit base, as `export --merged` makes it
            from peft import PeftModel

            on_full = PeftModel.from_pretrained(base, str(run.adapter)).eval()
            merged: dict[str, Timed] = {"base": (on_full, on_full.disable_adapter),
                                        "tuned_merged": (on_full, lambda: _merged(on_full))}
            m.speed = time_speeds(tokenizer, prompts, device, settings, merged)
            del on_full
        del base
        say("tuned model on its 4-bit base: generating for the same examples")
        tuned = load_trained(run, plan, device=device)
        with tuned.disable_adapter():
            quality("base_quantized", tuned)
        quality("tuned", tuned)
        m.speed |= time_speeds(tokenizer, prompts, device, settings,
                               {"base_quantized": (tuned, tuned.disable_adapter), "tuned": plain(tuned)})
        return m, settings
    del base
    say("tuned model: generating for the same examples")
    tuned = load_trained(run, plan, device=device)
    quality("tuned", tuned)
    variants: dict[str, Timed] = {"base": (tuned, tuned.disable_adapter), "tuned": plain(tuned)}
    if card.mergeable:
        variants["tuned_merged"] = (tuned, lambda: _merged(tuned))
    m.speed = time_speeds(tokenizer, prompts, device, settings, variants)
    return m, settings


def _compare(metrics: list[str], base: list[list[float]], tuned: list[list[float]], seed: int) -> dict[str, Any]:
    """Each metric's paired test, as report.json holds it."""
    out = {}
    for name, b, t in zip(metrics, base, tuned, strict=True):
        result = paired_binary(b, t) if name in BINARY else paired_continuous(b, t, seed=seed)
        out[name] = {"kind": "binary" if name in BINARY else "continuous", **_as_dict(result)}
    return out


def _perplexity(losses: list[tuple[float, int]]) -> float:
    """Token-weighted: exp(total negative log-likelihood / total tokens)."""
    return math.exp(sum(nll for nll, _ in losses) / sum(n for _, n in losses))


#: A loss that is higher is worse: the paired test's direction read for losses.
LOWER_IS_BETTER = {"better": "worse", "worse": "better", "no difference": "no difference",
                   "inconclusive": "inconclusive"}


def _general(base: list[tuple[float, int]], tuned: list[tuple[float, int]], seed: int) -> dict[str, Any]:
    """Token-weighted perplexity of both, and the paired test of their difference.

    Each passage's summed loss is divided by the mean passage length, so the mean of the paired differences is
    exactly the token-weighted log-perplexity difference; the BCa interval of that mean, exponentiated, is the
    interval of the perplexity ratio (the mean length held fixed)."""
    mean_tokens = sum(n for _, n in base) / len(base)
    test = paired_continuous([nll / mean_tokens for nll, _ in base], [nll / mean_tokens for nll, _ in tuned],
                             seed=seed)
    found = LOWER_IS_BETTER[test.direction]
    low, high = math.expm1(test.ci_low), math.expm1(test.ci_high)  # NaN stays NaN
    change = math.expm1(test.effect)
    if found in ("better", "worse"):
        sentence = (f"General ability is {found}: the tuned model's perplexity is {change * 100:+.1f}% against the "
                    f"base's, {p_text(test.p_value)}, and the 95% interval of the change, {low * 100:+.1f}% to "
                    f"{high * 100:+.1f}%, lies {'below' if found == 'better' else 'above'} zero.")
    else:
        sentence = (f"Perplexity {change * 100:+.1f}% against the base's. "
                    + explain(found, low * 100, high * 100, test.p_value, "%"))
    return {"perplexity_base": round(_perplexity(base), 4), "perplexity_tuned": round(_perplexity(tuned), 4),
            "perplexity_increase": round(_perplexity(tuned) / _perplexity(base) - 1, 4),
            "change_interval": [_round(low), _round(high)], "p_value": test.p_value, "direction": found,
            "sentence": sentence, "tokens": sum(n for _, n in base),
            "test": "paired permutation and BCa bootstrap on per-passage losses (token-weighted)"}


def _number(value: float | None) -> float:
    return math.nan if value is None else value


def _round(value: float) -> float | None:
    return None if not math.isfinite(value) else round(value, 4)


def _evaluate(run: RunDir, say: Any, base_from: Path | None = None) -> Report:
    started = time.perf_counter()
    plan = run.read_plan()
    method, card = plan.method, plan.card
    artifact = run.artifact(card)
    if not artifact.is_dir():
        raise InputError("the run has no trained model yet", file=str(run.path),
                         hint=f"finish it first: finetune-advisor train --resume {run.path}")
    if not saved_model_intact(artifact):
        raise InputError("the saved model is incomplete: its save was interrupted", file=str(artifact),
                         hint=f"save it again from the last checkpoint: finetune-advisor train --resume {run.path}")
    test_rows = read_split(run, "test")
    if not test_rows:
        raise InputError("the run's test split is empty", file=str(run.split("test")),
                         hint="give data.test_path, or more examples so that 10% can be held out")
    metrics = _metrics_for(plan.goal, plan.evaluation.metric)
    general = general_passages(plan.evaluation.general_set)

    from runner.model import load_tokenizer, select_device

    device = select_device()
    tokenizer = load_tokenizer(plan.model.name_or_path, plan.model.trust_remote_code)
    pairs = [prompt_and_reference(row, tokenizer) for row in test_rows]
    prompts, references = [p for p, _ in pairs], [r for _, r in pairs]
    settings = load_evaluation()
    longest = max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references)
    max_new = min(settings.max_new_tokens_cap, longest + settings.max_new_tokens_margin)
    measured, decoding = _measure(run, card, tokenizer, device, prompts, general, max_new, say, base_from)
    reference_base = "base_quantized" if card.quantized else "base"

    # ---- per-example scores, written side by side
    scores = {which: {name: [score(name, o, r, q) for o, r, q in zip(outputs, references, prompts, strict=True)]
                      for name in metrics} for which, outputs in measured.outputs.items()}
    run.eval_dir.mkdir(exist_ok=True)
    for which, outputs in measured.outputs.items():
        lines = [json.dumps({"index": i, "source_index": row.get("source_index"), "prompt": prompts[i],
                             "question": readable_prompt(row), "reference": references[i], "output": outputs[i],
                             "scores": {m: scores[which][m][i] for m in metrics}}, ensure_ascii=False)
                 for i, row in enumerate(test_rows)]
        run.predictions(which).write_text("\n".join(lines) + "\n", encoding="utf-8")

    # ---- statistics: the tuned model against the base it trained on
    results = _compare(metrics, [scores[reference_base][m] for m in metrics], [scores["tuned"][m] for m in metrics],
                       plan.seed)
    primary = metrics[0]
    general_ability = _general(measured.losses[reference_base], measured.losses["tuned"], plan.seed)
    general_ability.update(set=plan.evaluation.general_set, texts=len(general))
    quantization = None
    if card.quantized:
        quantization = {
            "compared": "the base loaded in 4-bit (as QLoRA trains on it) against the base in 16-bit",
            "metrics": _compare(metrics, [scores["base"][m] for m in metrics],
                                [scores["base_quantized"][m] for m in metrics], plan.seed),
            "general_ability": _general(measured.losses["base"], measured.losses["base_quantized"], plan.seed),
            "tuned_against_16bit_base": _compare([primary], [scores["base"][primary]], [scores["tuned"][primary]],
                                                 plan.seed)[primary]}

    # ---- speed: what is served against the base it replaces
    from runner.generation import SPEED_PROMPTS, SPEED_ROUNDS, SPEED_TOKENS, speed_ratio

    speed = measured.speed
    served_name = "tuned_merged" if "tuned_merged" in speed else "tuned"
    against = "base" if served_name == "tuned_merged" or not card.quantized else "base_quantized"
    ratio = speed_ratio(speed[served_name], speed[against]) if speed else None

    # ---- costs, from the run
    events = read_events(run.events)
    done: dict[str, Any] = next((e for e in reversed(events) if e.get("kind") == "done"), {})
    base_path = Path(plan.model.name_or_path)
    base_gb = _size_gb(base_path) if base_path.is_dir() else ((plan.model.params_b or 0) * 2 or None)
    p = results[primary]
    inputs = ScorecardInputs(
        metric=primary, tuned_metric=p["tuned_mean"], base_metric=p["base_mean"], p_value=p["p_value"],
        ci_low=_number(p["ci_low"]), ci_high=_number(p["ci_high"]), direction=p["direction"],
        perplexity_increase=general_ability["perplexity_increase"],
        throughput_ratio=ratio["scored_ratio"] if ratio else None,
        peak_memory_gb=done.get("peak_memory_gb"), available_gb=plan.available_gb,
        training_hours=done["train_seconds"] / 3600 if "train_seconds" in done else None,
        artifact_gb=_size_gb(artifact), base_model_gb=base_gb, deployment_kind=_deployment_kind(card))
    scorecard = build_scorecard(inputs)
    split = read_split_summary(run)
    warnings = [w for r in results.values() for w in r["warnings"]]
    if plan.licence_warning:  # said before training; said again where the result is judged
        warnings.append(plan.licence_warning)
    power = settings.power
    binary = primary in BINARY
    smallest, shown = smallest_difference(len(test_rows), binary, power.probability, primary)
    if smallest is None or smallest > (power.coarsest_gain if binary else power.coarsest_effect_size):
        warnings.append(f"{len(test_rows)} test examples: " + (
            f"the smallest difference this test shows {power.probability:.0%} of the time at p < 0.05 is {shown}"
            if shown else "too few for any test to show a difference") + "; a larger test set tells more")
    if split and split.get("test_facts") and split["test_facts_seen_in_training"] < split["test_facts"]:
        warnings.append(f"{split['test_facts'] - split['test_facts_seen_in_training']} of the {split['test_facts']} "
                        "facts the test asks are not in the training data: those questions measure guessing, not "
                        "what fine-tuning taught (give several phrasings of each fact, or data.test_path with new "
                        "phrasings of trained questions)")
    report = Report(
        run=str(run.path), method=method, goal=plan.goal, model=plan.model.name_or_path, device=device,
        test_examples=len(test_rows), test_split=str(run.split("test")), decoding=decoding,
        primary_metric=primary, metrics=results, direction=p["direction"],
        compared_with=("the base model loaded in 4-bit, as QLoRA trained on it (the 16-bit base: see Quantization)"
                       if card.quantized else "the base model"),
        general_ability=general_ability,
        speed={**speed, "served": served_name, "against": against, "ratio": ratio,
               "method": f"{SPEED_PROMPTS} test prompts, exactly {SPEED_TOKENS} new tokens each, greedy; "
                         f"{SPEED_ROUNDS} rounds in rotating order, the median round reported" if ratio else
                         "not timed: the answers set evaluation.speed to false",
               "evaluation_generation": measured.timing,
               **({"base_measured_for_an_earlier_run": measured.base_from} if measured.base_from else {})},
        resources={"train_seconds": done.get("train_seconds"), "peak_memory_gb": done.get("peak_memory_gb"),
                   "artifact_gb": inputs.artifact_gb, "base_model_gb": base_gb,
                   # loading, generating, the general-text losses, timing and the statistics: what evaluating cost
                   "evaluation_seconds": round(time.perf_counter() - started, 1)},
        scorecard=scorecard, verdict=scorecard["verdict"], warnings=warnings, quantization=quantization,
        split=split,
    )
    write_loss_png(run.loss_png,
                   [(e["step"], float(e["loss"])) for e in events if e["kind"] == "step" and
                    isinstance(e.get("loss"), (int, float))],
                   [(e["step"], float(e["eval_loss"])) for e in events if e["kind"] == "eval"])
    write_report(run, report)
    say(f"report: {run.report_md}")
    return report


def _as_dict(result: Any) -> dict[str, Any]:
    """A test's result as JSON holds it: tuples as lists, undefined numbers (NaN) as null."""
    out = dict(vars(result))
    out["warnings"] = list(out.get("warnings", ()))
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in out.items()}
