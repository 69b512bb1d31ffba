"""The pilot: does the advice hold on this data? The recommended method and its strongest alternatives (or two
or three values of one setting, a sweep) are each trained for the same small budget on a slice of the training
data, scored on the validation split, and compared with paired tests: an omnibus test first (Cochran's Q for 0/1
metrics, Friedman for continuous ones), then every pair, Holm-corrected. The result says which to train in full,
with the evidence and the cost of each, or that the candidates cannot be told apart on this many examples.

The pilot's runs are ordinary run directories under RUNS/STAMP-pilot-MODEL/runs/. Their test set is the full
data's validation split: the test split is never scored, so the full run's verdict stays a fresh measurement.
The base model's outputs and general-text losses on it are measured once (base-measurements.json) and shared.
`winner.yaml` beside them is the user's answers with the winning choice, for `finetune-advisor train`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from advisor.answers import OVERRIDE_KEYS, Answers, answers_to_dict
from advisor.estimate import TRAINING_ONLY, run_start_seconds
from advisor.inputs import probe_answers_file
from advisor.pipeline import apply_settings, replay
from advisor.recommend import Recommendation, evaluation_time, gather_inputs, recommend
from advisor.runs import plan_run
from knowledge import load_evaluation
from knowledge.errors import InputError
from runner.data import split_count
from runner.plan import Plan, step_schedule

__all__ = ["Candidate", "PilotPlan", "decide", "decision_headline", "pilot_rows", "plan_pilot", "render_pilot",
           "run_pilot"]

Say = Callable[[str], None]
SWEEPABLE = ("learning_rate", "lora_rank")


@dataclass
class Candidate:
    label: str
    method: str
    settings: dict[str, Any] = field(default_factory=dict)
    """Overrides beyond the method (a sweep's value)."""
    estimate_s: float = 0.0
    estimate: str = ""
    evaluation_s: float = 0.0
    """The estimate of its evaluation on the validation split (generation and general text; speed not timed)."""
    start_s: float = 0.0
    """The estimate of its run's own start and save, beyond training and evaluation."""
    advised: bool = False
    """The recommendation's own choice (its method, or its value of the swept setting)."""

    @property
    def total_s(self) -> float:
        """The estimate of the whole candidate: training, evaluation, and the run's start and save."""
        return self.estimate_s + self.evaluation_s + self.start_s


@dataclass
class PilotPlan:
    answers: Answers
    recommendation: Recommendation
    full_plan: Plan
    """The plan of the full run: its split is the one the pilot slices and scores on."""
    candidates: list[Candidate]
    steps: int
    examples: int
    """Training examples in the slice each candidate trains on."""
    validation: int
    """Examples of the validation split, which every candidate is scored on."""
    sweep: str | None = None

    def lines(self) -> list[str]:
        """The budget, before anything starts."""
        total = sum(c.estimate_s for c in self.candidates)
        what = f"{self.sweep} values for {self.recommendation.method}" if self.sweep else "methods"
        evaluation = sum(c.evaluation_s for c in self.candidates)
        start = sum(c.start_s for c in self.candidates)
        out = [f"pilot: {len(self.candidates)} {what}, {self.steps} steps each on {self.examples} training "
               f"examples, scored on the {self.validation} examples of the validation split (the test split is not "
               "touched)"]
        out += [f"  {c.label}: training {c.estimate.removesuffix(TRAINING_ONLY)}; then evaluation about "
                f"{_minutes(c.evaluation_s)}" for c in self.candidates]
        out.append(f"  in all: about {_minutes(total + evaluation + start)} ({_minutes(total)} training, "
                   f"{_minutes(evaluation)} evaluating, {_minutes(start)} starting and saving the runs)")
        return out


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _sweep_values(key: str, recommended: Any, given: list[str] | None) -> list[Any]:
    kind: Callable[[Any], Any] = float if key == "learning_rate" else int
    bounds = OVERRIDE_KEYS[key][1]
    if given:
        try:
            values = [kind(yaml.safe_load(v)) for v in given]
        except (TypeError, ValueError):
            raise InputError(f"--sweep {key}: values must be numbers, got {', '.join(given)}", key="--sweep") from None
    else:
        factors = load_evaluation().pilot.sweep_factors[key]
        values = [kind(round(recommended * f, 10)) if kind is float else max(1, int(round(recommended * f)))
                  for f in factors]
    values = list(dict.fromkeys(values))
    low, high = bounds
    bad = [v for v in values if not low <= v <= high]
    if bad:
        raise InputError(f"--sweep {key}: {bad[0]} is outside {low:g} to {high:g}", key="--sweep")
    if not 2 <= len(values) <= 3:
        raise InputError(f"--sweep {key} needs two or three different values", key="--sweep",
                         hint=f"for example --sweep {key}={recommended},{recommended * 3}")
    return values


def _named_methods(methods: list[str]) -> list[str]:
    from knowledge.ids import RUNNABLE_METHODS

    named = list(dict.fromkeys(m.strip() for m in methods if m.strip()))
    unknown = [m for m in named if m not in RUNNABLE_METHODS]
    if unknown:
        raise InputError(f"{unknown[0]!r} is not a method this tool trains", key="--methods",
                         hint=f"one of: {', '.join(RUNNABLE_METHODS)}")
    if len(named) < 2:
        raise InputError("give two or more methods to compare", key="--methods",
                         hint="for example --methods lora,dora,p_tuning_v2")
    return named


def plan_pilot(answers: Answers, *, alternatives: int | None = None, steps: int | None = None,
               examples: int | None = None, sweep: str | None = None, methods: list[str] | None = None,
               allow_network: bool = True) -> PilotPlan:
    """The candidates, the budget and its estimate; nothing is created. `sweep` is KEY or KEY=v1,v2[,v3];
    `methods` names the methods to compare instead of the recommended one and its alternatives."""
    settings = load_evaluation().pilot
    if methods is not None:  # checked first: a wrong option is said before anything slower is looked at
        if sweep or alternatives is not None:
            raise InputError("names the candidates itself: it goes without --sweep and --alternatives",
                             key="--methods")
        methods = _named_methods(methods)
    if answers.data.path is None:
        raise InputError("a pilot trains on your data: give data.path", key="data.path")
    if "method" in answers.overrides and not sweep and methods is None:
        raise InputError("overrides.method fixes the method, so there is nothing to choose between",
                         key="overrides.method", hint="remove it to pilot the advised methods, or sweep a setting "
                                                       "of it: --sweep learning_rate")
    rec, full_plan = plan_run(answers, allow_network=allow_network, check_model=True)
    if not rec.memory["fits"] and methods is None:
        raise InputError(f"{rec.method} does not fit here (needs {rec.memory['estimated_gb']:g} GB, "
                         f"{rec.memory['usable_gb']:g} GB usable): there is nothing to pilot",
                         hint="a smaller model or more memory; finetune-advisor models suggests one that fits")
    train_examples = int(rec.data["train_examples"])
    examples = min(train_examples, examples or settings.max_examples)
    hp = rec.hyperparameters
    full_steps, _, _ = step_schedule(train_examples, hp["batch_size"], hp["gradient_accumulation"], 1, hp["epochs"],
                                     answers.overrides.get("max_steps"))
    steps = steps or min(full_steps, settings.max_steps)
    if sweep:
        key, _, raw = sweep.partition("=")
        if key not in SWEEPABLE:
            raise InputError(f"--sweep {key!r} is not a setting the pilot sweeps", key="--sweep",
                             hint=f"one of: {', '.join(SWEEPABLE)}")
        if hp.get(key) is None:
            raise InputError(f"{rec.method} has no {key} to sweep", key="--sweep")
        values = _sweep_values(key, hp[key], raw.split(",") if raw else None)
        candidates = [Candidate(f"{rec.method}, {key} {v:g}", rec.method, {key: v}, advised=v == hp[key])
                      for v in values]
    elif methods is not None:
        candidates = [Candidate(m, m, advised=m == rec.method) for m in methods]
    else:
        others = [a["method"] for a in rec.alternatives if a["fits"]][:alternatives if alternatives is not None
                                                                      else settings.alternatives]
        candidates = [Candidate(m, m, advised=m == rec.method) for m in [rec.method, *others]]
    if len(candidates) < 2:
        raise InputError("only the recommended method fits here: there is nothing to compare it with",
                         hint="free memory, or sweep one of its settings: --sweep learning_rate")
    validation = _validation_examples(answers, full_plan, int(rec.data["examples"]))
    for n, c in enumerate(candidates):  # the same estimate the recommendation gives, for the pilot's budget
        pilot_answers = apply_settings(answers, c.method, [f"overrides.max_steps={steps}",
                                                           *(f"overrides.{k}={v}" for k, v in c.settings.items())])
        inputs = gather_inputs(pilot_answers, allow_network=allow_network)
        chosen = recommend(inputs)
        if not chosen.memory["fits"]:
            raise InputError(f"{c.label} does not fit here (needs {chosen.memory['estimated_gb']:g} GB, "
                             f"{chosen.memory['usable_gb']:g} GB usable)",
                             key="--methods" if methods is not None else "--sweep" if sweep else None,
                             hint="leave it out, or use a lighter method" if methods is not None
                             else "a smaller model or more memory")
        c.estimate_s, c.estimate = float(chosen.time["seconds"]), chosen.time["basis"]
        c.evaluation_s = evaluation_time(inputs, c.method, chosen.memory["device"], examples=validation, speed=False,
                                         tokens_mean=chosen.data["tokens_per_example"],
                                         tokens_p99=chosen.data["tokens_p99"],
                                         base_measured=n == 0).seconds  # the later ones read the base back
        c.start_s = run_start_seconds(inputs.model, chosen.memory["device"])
    return PilotPlan(answers, rec, full_plan, candidates, steps, examples, validation,
                     sweep.partition("=")[0] if sweep else None)


def _validation_examples(answers: Answers, full_plan: Plan, examples: int) -> int:
    """The validation split's size, as prepare_splits will make it: data.validation_path's examples, or the
    plan's share of the data."""
    if answers.data.validation_path:
        return probe_answers_file(answers, answers.data.validation_path, "data.validation_path").examples
    return split_count(examples, full_plan.data.split["validation"])


def decide(comparison: dict[str, Any], candidates: list[Candidate]) -> dict[str, Any]:
    """Which candidate to train in full, from compare_runs' result. The omnibus test comes first: when it finds
    no difference, no pair is looked at. Then the best scorer wins when each of its Holm-corrected pairwise tests
    finds it better. Otherwise the candidates tied with the best (not significantly different from it) cannot be
    told apart on this many examples: the advised one stays the choice when it is among them, else the quickest."""
    runs = comparison["runs"]
    best = max(range(len(runs)), key=lambda i: runs[i]["tuned"])
    omnibus = comparison.get("omnibus")
    omnibus_ok = omnibus is None or omnibus["p_value"] < 0.05

    def differs_from_best(i: int) -> bool:
        pair = next((p for p in comparison["pairwise"]
                     if {p["a"], p["b"]} == {runs[i]["name"], runs[best]["name"]}), None)
        return omnibus_ok and pair is not None and pair["p_holm"] < 0.05

    tied = [i for i in range(len(runs)) if i == best or not differs_from_best(i)]
    n, metric, top = comparison["test_examples"], comparison["metric"], candidates[best]
    if len(tied) == 1:
        why = (f"{top.label} scored {runs[best]['tuned']:.3f} {metric}, significantly better than every other "
               f"candidate on {n} validation examples (Holm-corrected" + (f"; {omnibus['sentence']}" if omnibus else "")
               + ")")
        return {"winner": top.label, "method": top.method, "settings": top.settings, "decided": True, "why": why}
    advised = next((i for i in tied if candidates[i].advised), None)
    chosen = advised if advised is not None else min(tied, key=lambda i: candidates[i].estimate_s)
    worse = len(runs) - len(tied)
    if omnibus is not None and not omnibus_ok:
        why = f"the candidates cannot be told apart on {n} validation examples ({omnibus['sentence']})"
    else:
        why = (f"{top.label} scored highest ({runs[best]['tuned']:.3f} {metric}), but on {n} validation examples it "
               f"is not significantly better than {', '.join(candidates[i].label for i in tied if i != best)}"
               + (f"; the other {worse} did significantly worse" if worse else ""))
    advice = next((c for c in candidates if c.advised), None)
    why += (f". Train {candidates[chosen].label}: "
            + ("the advised choice, which the pilot did not contradict" if advised is not None
               else (f"the advised {advice.label}" if advice else "the advised choice")
               + " did significantly worse than the best; this is the quickest of those tied with it")
            + "; a larger validation split (data.validation_path) tells more")
    return {"winner": None, "method": candidates[chosen].method, "settings": candidates[chosen].settings,
            "decided": False, "why": why}


def run_pilot(plan: PilotPlan, runs_dir: str = "runs", *, allow_network: bool = True, say: Say = print,
              on_event: Any = None) -> dict[str, Any]:
    """Train, evaluate and compare every candidate; write pilot.json, pilot.md and winner.yaml; the result."""
    from runner.compare import compare_runs
    from runner.data import prepare_splits, read_split
    from runner.rundir import create_run_dir

    answers = plan.answers
    folder = create_run_dir(runs_dir, "pilot", answers.model.name_or_path)
    counts = prepare_splits(plan.full_plan, folder)  # the full data's split, as its full run will make it
    train = read_split(folder, "train")
    random.Random(answers.seed).shuffle(train)
    slice_path = folder.path / "data" / "pilot-train.jsonl"
    slice_path.write_text("".join(json.dumps({k: v for k, v in row.items() if k != "source_index"},
                                             ensure_ascii=False) + "\n" for row in train[:plan.examples]),
                          encoding="utf-8")
    validation = folder.split("validation")
    if counts["validation"] < 2:
        raise InputError(f"the validation split has {counts['validation']} example(s): too few to compare on",
                         key="data.validation_path", hint="give data.validation_path, or more examples")
    for line in plan.lines():
        say(line)
    # the base model's outputs on the validation split, measured once and shared by every candidate
    base_file = folder.path / "base-measurements.json"
    results, evaluation_s, took_s = [], [], []
    for n, c in enumerate(plan.candidates):
        say(f"== pilot: {c.label}")
        started = time.monotonic()
        settings = [f"data.path={slice_path}", f"data.test_path={validation}", f"overrides.max_steps={plan.steps}",
                    "evaluation.speed=false",  # the candidates are compared on the task; their cost is training's
                    *(f"overrides.{k}={v}" for k, v in c.settings.items())]
        result = replay(apply_settings(answers, c.method, settings), runs_dir=str(folder.path / "runs"),
                        allow_network=allow_network, say=say, on_event=on_event, base_from=base_file)
        if result.exit_code != 0 or result.report is None:
            raise InputError(f"the pilot run of {c.label} did not finish", file=str(result.run),
                             hint=f"see {result.run}/worker.log; continue it with finetune-advisor replay "
                                  f"--resume {result.run}")
        results.append(result)
        took_s.append(time.monotonic() - started)
        evaluation_s.append(float(result.report.resources.get("evaluation_seconds") or 0))
        rest = plan.candidates[n + 1:]
        if rest:  # the estimates of the rest, scaled by how the candidates so far came out against theirs
            done = plan.candidates[:n + 1]
            ratio = sum(took_s) / max(1e-9, sum(d.total_s for d in done))
            left = ratio * sum(r.total_s for r in rest)
            say(f"pilot: {c.label} took {_minutes(took_s[-1])} ({_minutes(evaluation_s[-1])} of it evaluating; "
                f"estimated {_minutes(c.total_s)}); about {_minutes(left)} left for "
                f"{len(rest)} more")
    comparison = compare_runs([str(r.run) for r in results], progress=say)
    decision = decide(comparison, plan.candidates)
    costs = []
    for c, r, evaluated, took in zip(plan.candidates, results, evaluation_s, took_s, strict=True):
        assert r.report is not None
        costs.append({"label": c.label, "method": c.method, "settings": c.settings, "run": r.run,
                      "estimated_train_s": round(c.estimate_s, 1),
                      "train_seconds": r.report.resources.get("train_seconds"),
                      "estimated_evaluation_s": round(c.evaluation_s, 1), "evaluation_seconds": evaluated,
                      "seconds": round(took, 1),
                      "peak_memory_gb": r.report.resources.get("peak_memory_gb"),
                      "perplexity_increase": r.report.general_ability.get("perplexity_increase"),
                      "ready": r.report.scorecard["ready"], "verdict": r.report.verdict})
    winner = answers_to_dict(answers)
    winner["data"]["path"] = str(answers.resolve(winner["data"]["path"]))
    winner["overrides"] = {**winner.get("overrides", {}), "method": decision["method"],
                           **decision["settings"]}
    winner_path = folder.path / "winner.yaml"
    winner_path.write_text(f"# the pilot's choice ({decision['why']})\n" +
                           yaml.safe_dump(winner, sort_keys=False, allow_unicode=True), encoding="utf-8")
    out = {"pilot": str(folder.path), "steps": plan.steps, "examples": plan.examples,
           "validation_examples": comparison["test_examples"], "sweep": plan.sweep,
           "recommended": plan.recommendation.method, "comparison": comparison, "candidates": costs,
           "decision": decision, "winner_answers": str(winner_path),
           "next": f"finetune-advisor train --answers {winner_path}"}
    (folder.path / "pilot.json").write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8")
    (folder.path / "pilot.md").write_text(render_pilot(out), encoding="utf-8")
    return out


def decision_headline(result: dict[str, Any]) -> str:
    """"Train lora", or "No clear winner"."""
    decision = result["decision"]
    return f"Train {decision['winner']}" if decision["decided"] else "No clear winner"


def pilot_rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """(candidate, tuned against base, p against the base (Holm), general-text perplexity change, train time,
    peak memory) per candidate."""
    rows: list[tuple[str, ...]] = []
    for c, r in zip(result["candidates"], result["comparison"]["runs"], strict=True):
        ppl = c.get("perplexity_increase")
        rows.append((c["label"], f"{r['tuned']:.3f} vs {r['base']:.3f}", f"{r['p_holm']:.3g}",
                     "not measured" if ppl is None else f"{ppl * 100:+.1f}%", _minutes(c["train_seconds"] or 0),
                     f"{c['peak_memory_gb'] or 0:.2f} GB"))
    return rows


def render_pilot(result: dict[str, Any]) -> str:
    c = result["comparison"]
    labels = {r["name"]: cand["label"] for r, cand in zip(c["runs"], result["candidates"], strict=True)}
    why = result["decision"]["why"]
    lines = [f"# Pilot: {', '.join(x['label'] for x in result['candidates'])}", "",
             f"**{decision_headline(result)}.** {why[0].upper() + why[1:]}.", "",
             f"Each candidate trained {result['steps']} steps on {result['examples']} training examples and was "
             f"scored ({c['metric']}) on the same {c['test_examples']} validation examples; the test split was not "
             "used.", "",
             "| candidate | tuned vs base | p vs base (Holm) | general-text perplexity | training | peak memory |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in pilot_rows(result)]
    if c.get("omnibus"):
        lines += ["", f"Omnibus: {c['omnibus']['sentence']}."]
    lines += ["", "Pairs (the second minus the first; Holm-corrected):", ""]
    lines += [f"- {labels[p['a']]} vs {labels[p['b']]}: {p['effect_b_minus_a']:+.3f} (95% interval "
              f"{p['ci'][0]:+.3f} to {p['ci'][1]:+.3f}), Holm p = {p['p_holm']:.3g}" for p in c["pairwise"]]
    lines += ["", f"Train it in full: `{result['next']}`", ""]
    return "\n".join(lines)
