"""Typed loaders for the YAML files in knowledge/: each file is validated whole when it is read."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KNOWLEDGE_DIR = Path(__file__).parent
#: The C-accelerated safe loader when PyYAML has it; it builds only plain Python objects, like safe_load.
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: The method ids of DESIGN.md that the runner can train.
RUNNABLE_METHODS = (
    "full", "freeze", "lora", "dora", "qlora", "prefix", "p_tuning", "p_tuning_v2", "prompt_tuning", "ia3",
)
GOALS = ("style", "knowledge", "reasoning", "agent")
PRIORITIES = ("balanced", "quality", "speed", "memory")
DEPLOY_TARGETS = ("server", "edge")
STAGES = ("goal", "priority", "deploy", "fit", "alternatives")
WHEN_KEYS = ("goal", "priority", "deploy", "examples_min", "examples_max", "fits", "full_fits")
MODULE_SHAPES = ("q", "k", "v", "o", "qkv", "gate", "up", "gate_up", "down")
SCORECARD_DIMENSIONS = ("task", "general", "speed", "resources", "deployment")


class KnowledgeError(Exception):
    """A knowledge file is malformed; the message names the file and the key."""


class _Reader:
    """Reads typed values out of one parsed YAML mapping, naming file and key path on error."""

    def __init__(self, file: str, data: Any, path: str = "") -> None:
        self.file, self.data, self.path = file, data, path
        if not isinstance(data, dict):
            self.fail(f"must be a mapping, got {type(data).__name__}")

    def fail(self, message: str, key: str | None = None) -> None:
        where = ".".join(p for p in (self.path, key) if p) or "(top level)"
        raise KnowledgeError(f"{self.file}: {where}: {message}")

    def only(self, *allowed: str) -> None:
        for key in self.data:
            if key not in allowed:
                self.fail(f"unknown key (allowed: {', '.join(allowed)})", str(key))

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                self.fail("missing", key)
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, bool) and kind is not bool and not (isinstance(kind, tuple) and bool in kind):
            self.fail(f"must be {_type_name(kind)}, got a boolean", key)
        if not isinstance(value, kind):
            self.fail(f"must be {_type_name(kind)}, got {type(value).__name__}", key)
        return value

    def sub(self, key: str) -> _Reader:
        return _Reader(self.file, self.get(key, dict), f"{self.path}.{key}" if self.path else key)

    def strings(self, key: str, default: Any = ...) -> list[str]:
        values = self.get(key, list, default)
        if not all(isinstance(v, str) and v for v in values):
            self.fail("must be a list of non-empty strings", key)
        return list(values)

    def number_range(self, key: str) -> tuple[float, float]:
        values = self.get(key, list)
        if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            self.fail("must be [low, high], two numbers", key)
        low, high = float(values[0]), float(values[1])
        if low > high:
            self.fail(f"low {low} is above high {high}", key)
        return low, high

    def choice(self, key: str, allowed: tuple[str, ...], default: Any = ...) -> Any:
        value = self.get(key, str, default)
        if value is not default and value not in allowed:
            self.fail(f"{value!r} is not one of {', '.join(allowed)}", key)
        return value


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {dict: "a mapping", list: "a list", str: "a string", int: "an integer", float: "a number",
             bool: "true or false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _read(name: str) -> _Reader:
    path = KNOWLEDGE_DIR / name
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"{name}: not valid YAML: {exc}") from None
    reader = _Reader(name, data)
    if reader.get("version", int) != 1:
        reader.fail("only version 1 is known", "version")
    return reader


# --------------------------------------------------------------------------- method cards

@dataclass(frozen=True)
class Incompatibility:
    feature: str
    why: str


@dataclass(frozen=True)
class Serving:
    vllm_adapter: bool
    mergeable: bool
    merge_note: str


@dataclass(frozen=True)
class MethodCard:
    id: str
    name: str
    runnable: bool
    family: str
    trains: str
    trainable_share_percent: tuple[float, float]
    strengths: list[str]
    limits: list[str]
    when_to_use: list[str]
    defaults: dict[str, Any]
    incompatibilities: list[Incompatibility]
    serving: Serving
    sources: list[str]
    not_runnable_why: str | None = None
    packable: bool = False
    """Whether batches may be flattened into one padding-free row (not for prompt-learning methods)."""

    def incompatible_with(self, feature: str) -> Incompatibility | None:
        return next((i for i in self.incompatibilities if i.feature == feature), None)


_METHOD_KEYS = ("id", "packable", "name", "runnable", "family", "trains", "trainable_share_percent", "strengths",
                "limits",
                "when_to_use", "defaults", "incompatibilities", "serving", "sources", "not_runnable_why")
_DEFAULT_KEYS = {"learning_rate": float, "epochs": int, "lora_rank": int, "lora_alpha": int, "lora_dropout": float,
                 "lora_targets": str, "bits": int, "num_virtual_tokens": int, "encoder_hidden_size": int,
                 "freeze_trainable_layers": int}


@functools.cache
def load_methods() -> dict[str, MethodCard]:
    """All method cards by id; runnable ones are exactly RUNNABLE_METHODS."""
    top = _read("methods.yaml")
    top.only("version", "methods")
    cards: dict[str, MethodCard] = {}
    for i, raw in enumerate(top.get("methods", list)):
        r = _Reader(top.file, raw, f"methods[{i}]")
        r.only(*_METHOD_KEYS)
        mid = r.get("id", str)
        if mid in cards:
            r.fail(f"duplicate method id {mid!r}", "id")
        d = r.sub("defaults")
        d.only(*_DEFAULT_KEYS)
        defaults = {k: d.get(k, t) for k, t in _DEFAULT_KEYS.items() if k in d.data}
        incompat = []
        for j, item in enumerate(r.get("incompatibilities", list)):
            ir = _Reader(top.file, item, f"methods[{i}].incompatibilities[{j}]")
            ir.only("feature", "why")
            incompat.append(Incompatibility(ir.get("feature", str), ir.get("why", str)))
        s = r.sub("serving")
        s.only("vllm_adapter", "mergeable", "merge_note")
        runnable = r.get("runnable", bool)
        why_not = r.get("not_runnable_why", str, None)
        if not runnable and not why_not:
            r.fail("a card that is not runnable must say why", "not_runnable_why")
        if runnable and mid not in RUNNABLE_METHODS:
            r.fail(f"{mid!r} is marked runnable but is not a DESIGN.md method id", "runnable")
        if runnable and "learning_rate" not in defaults:
            r.fail("a runnable method needs a default learning_rate", "defaults")
        cards[mid] = MethodCard(
            id=mid, name=r.get("name", str), runnable=runnable, family=r.get("family", str),
            trains=r.get("trains", str), trainable_share_percent=r.number_range("trainable_share_percent"),
            strengths=r.strings("strengths"), limits=r.strings("limits"), when_to_use=r.strings("when_to_use"),
            defaults=defaults, incompatibilities=incompat,
            serving=Serving(s.get("vllm_adapter", bool), s.get("mergeable", bool), s.get("merge_note", str)),
            sources=r.strings("sources"), not_runnable_why=why_not, packable=r.get("packable", bool),
        )
    missing = [m for m in RUNNABLE_METHODS if m not in cards or not cards[m].runnable]
    if missing:
        top.fail(f"no runnable card for {', '.join(missing)}", "methods")
    return cards


# --------------------------------------------------------------------------- decision table

@dataclass(frozen=True)
class GoalAdvice:
    advised_examples: tuple[int, int]
    too_few: str
    too_many: str


@dataclass(frozen=True)
class Rule:
    id: str
    stage: str
    when: dict[str, Any]
    method: str | None
    reason: str

    def matches(self, facts: dict[str, Any]) -> bool:
        """True when every condition holds for `facts` (keys as in WHEN_KEYS)."""
        for key, want in self.when.items():
            if key == "examples_min":
                if facts.get("examples") is None or facts["examples"] < want:
                    return False
            elif key == "examples_max":
                if facts.get("examples") is None or facts["examples"] > want:
                    return False
            elif isinstance(want, list):
                if facts.get(key) not in want:
                    return False
            elif facts.get(key) != want:
                return False
        return True


@dataclass(frozen=True)
class DecisionTable:
    goals: dict[str, GoalAdvice]
    rules: list[Rule]
    fallback: dict[str, str | None]
    smaller_model_rule_id: str
    smaller_model_reason: str
    goal_alternatives: dict[str, list[tuple[str, str]]]
    """goal -> [(method, why it was not the first choice)]"""

    def stage(self, stage: str) -> list[Rule]:
        return [r for r in self.rules if r.stage == stage]

    def rule(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.id == rule_id)


_WHEN_VALUES: dict[str, tuple[str, ...]] = {"goal": GOALS, "priority": PRIORITIES, "deploy": DEPLOY_TARGETS}


@functools.cache
def load_decision_table() -> DecisionTable:
    top = _read("decision_table.yaml")
    top.only("version", "goals", "rules", "fallback", "smaller_model_rule", "goal_alternatives")
    methods = load_methods()
    g = top.sub("goals")
    goals: dict[str, GoalAdvice] = {}
    for goal in GOALS:
        gr = g.sub(goal)
        gr.only("advised_examples", "too_few", "too_many")
        low, high = gr.number_range("advised_examples")
        goals[goal] = GoalAdvice((int(low), int(high)), gr.get("too_few", str), gr.get("too_many", str))
    g.only(*GOALS)
    rules: list[Rule] = []
    for i, raw in enumerate(top.get("rules", list)):
        r = _Reader(top.file, raw, f"rules[{i}]")
        r.only("id", "stage", "when", "method", "reason")
        rid = r.get("id", str)
        if any(x.id == rid for x in rules):
            r.fail(f"duplicate rule id {rid!r}", "id")
        stage = r.choice("stage", STAGES)
        w = r.sub("when")
        w.only(*WHEN_KEYS)
        for key, allowed in _WHEN_VALUES.items():
            if key in w.data:
                values = w.data[key] if isinstance(w.data[key], list) else [w.data[key]]
                bad = [v for v in values if v not in allowed]
                if bad:
                    w.fail(f"{bad[0]!r} is not one of {', '.join(allowed)}", key)
        for key in ("examples_min", "examples_max"):
            if key in w.data:
                w.get(key, int)
        for key in ("fits", "full_fits"):
            if key in w.data:
                w.get(key, bool)
        method = r.get("method", str, None)
        if method is not None and (method not in methods or not methods[method].runnable):
            r.fail(f"{method!r} is not a runnable method id", "method")
        if stage != "fit" and method is None:
            r.fail(f"a {stage}-stage rule needs a method", "method")
        rules.append(Rule(rid, stage, dict(w.data), method, r.get("reason", str)))
    fb = top.sub("fallback")
    fallback: dict[str, str | None] = {}
    for mid in RUNNABLE_METHODS:
        target = fb.get(mid, (str, type(None)))
        if target is not None and target not in RUNNABLE_METHODS:
            fb.fail(f"{target!r} is not a runnable method id", mid)
        fallback[mid] = target
    fb.only(*RUNNABLE_METHODS)
    sm = top.sub("smaller_model_rule")
    sm.only("id", "reason")
    ga = top.sub("goal_alternatives")
    ga.only(*GOALS)
    goal_alternatives: dict[str, list[tuple[str, str]]] = {}
    for goal in GOALS:
        items = []
        for j, item in enumerate(ga.get(goal, list)):
            ir = _Reader(top.file, item, f"goal_alternatives.{goal}[{j}]")
            ir.only("method", "why_not")
            items.append((ir.choice("method", RUNNABLE_METHODS), ir.get("why_not", str)))
        goal_alternatives[goal] = items
    return DecisionTable(goals, rules, fallback, sm.get("id", str), sm.get("reason", str), goal_alternatives)


# --------------------------------------------------------------------------- hyperparameters

@dataclass(frozen=True)
class HyperparameterRanges:
    learning_rate: dict[str, tuple[float, float]]
    epochs_range: tuple[int, int]
    target_example_passes: int
    lora_rank_range: tuple[int, int]
    lora_rank_by_goal: dict[str, int]
    double_rank_above_examples: int
    halve_rank_below_examples: int
    alpha_per_rank: float
    num_virtual_tokens_range: tuple[int, int]
    gradient_accumulation_range: tuple[int, int]
    target_effective_batch: int
    batch_size_candidates: list[int]
    max_length_candidates: list[int]
    max_length_default: int
    split_validation: float
    split_test: float


def _ints(r: _Reader, key: str) -> list[int]:
    values = r.get(key, list)
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        r.fail("must be a non-empty list of positive integers", key)
    return list(values)


def _int_range(r: _Reader, key: str) -> tuple[int, int]:
    low, high = r.number_range(key)
    return int(low), int(high)


@functools.cache
def load_hyperparameters() -> HyperparameterRanges:
    top = _read("hyperparameters.yaml")
    top.only("version", "learning_rate", "epochs", "lora_rank", "num_virtual_tokens", "gradient_accumulation",
             "batch_size", "max_length", "split")
    lr = top.sub("learning_rate")
    lr.only(*RUNNABLE_METHODS)
    methods = load_methods()
    learning_rate = {}
    for mid in RUNNABLE_METHODS:
        low, high = lr.number_range(mid)
        default = methods[mid].defaults["learning_rate"]
        if not low <= default <= high:
            lr.fail(f"the default {default} of methods.yaml lies outside [{low}, {high}]", mid)
        learning_rate[mid] = (low, high)
    ep, rank, vt = top.sub("epochs"), top.sub("lora_rank"), top.sub("num_virtual_tokens")
    ep.only("range", "target_example_passes")
    rank.only("range", "by_goal", "double_above_examples", "halve_below_examples", "alpha_per_rank")
    vt.only("range")
    by_goal = rank.sub("by_goal")
    by_goal.only(*GOALS)
    ga, bs, ml, sp = top.sub("gradient_accumulation"), top.sub("batch_size"), top.sub("max_length"), top.sub("split")
    ga.only("range", "target_effective_batch")
    bs.only("candidates")
    ml.only("candidates", "default")
    sp.only("validation", "test")
    split_validation, split_test = sp.get("validation", float), sp.get("test", float)
    if not (0 <= split_validation < 0.5 and 0 < split_test < 0.5):
        sp.fail("validation must be in [0, 0.5) and test in (0, 0.5)")
    return HyperparameterRanges(
        learning_rate=learning_rate,
        epochs_range=_int_range(ep, "range"),
        target_example_passes=ep.get("target_example_passes", int),
        lora_rank_range=_int_range(rank, "range"),
        lora_rank_by_goal={g: by_goal.get(g, int) for g in GOALS},
        double_rank_above_examples=rank.get("double_above_examples", int),
        halve_rank_below_examples=rank.get("halve_below_examples", int),
        alpha_per_rank=rank.get("alpha_per_rank", float),
        num_virtual_tokens_range=_int_range(vt, "range"),
        gradient_accumulation_range=_int_range(ga, "range"),
        target_effective_batch=ga.get("target_effective_batch", int),
        batch_size_candidates=sorted(_ints(bs, "candidates"), reverse=True),
        max_length_candidates=sorted(_ints(ml, "candidates")),
        max_length_default=ml.get("default", int),
        split_validation=split_validation,
        split_test=split_test,
    )


# --------------------------------------------------------------------------- scorecard

@dataclass(frozen=True)
class Threshold:
    """[threshold, score] pairs: the first threshold the value meets gives the score, otherwise `otherwise`."""

    direction: str
    """at_least (larger is better) or at_most (smaller is better)"""
    steps: list[tuple[float, float]]
    otherwise: float

    def score(self, value: float) -> float:
        for threshold, score in self.steps:
            if (value >= threshold) if self.direction == "at_least" else (value <= threshold):
                return score
        return self.otherwise


@dataclass(frozen=True)
class Scorecard:
    weights: dict[str, float]
    ready_threshold: float
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    """dimension -> rule name -> a Threshold or a fixed score"""
    advice: dict[str, str] = field(default_factory=dict)


def _threshold(r: _Reader) -> Threshold:
    direction = "at_least" if "at_least" in r.data else "at_most"
    r.only(direction, "else")
    steps = []
    for i, pair in enumerate(r.get(direction, list)):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, (int, float)) for v in pair)):
            r.fail(f"item {i} must be [threshold, score]", direction)
        if not 1 <= pair[1] <= 5:
            r.fail(f"item {i}: a score must lie between 1 and 5", direction)
        steps.append((float(pair[0]), float(pair[1])))
    thresholds = [t for t, _ in steps]
    scores = [s for _, s in steps]
    ordered = thresholds == sorted(thresholds, reverse=direction == "at_least")
    if not ordered or scores != sorted(scores, reverse=True):
        r.fail("thresholds must run from the best to the worst, with scores falling: the rule must be monotone",
               direction)
    otherwise = r.get("else", float)
    if steps and otherwise > scores[-1]:
        r.fail("`else` must not score above the last step", "else")
    return Threshold(direction, steps, otherwise)


@functools.cache
def load_scorecard() -> Scorecard:
    top = _read("scorecard.yaml")
    top.only("version", "weights", "ready_threshold", "rules", "advice")
    w = top.sub("weights")
    w.only(*SCORECARD_DIMENSIONS)
    weights = {d: w.get(d, float) for d in SCORECARD_DIMENSIONS}
    if abs(sum(weights.values()) - 1.0) > 1e-9:
        w.fail(f"weights must add up to 1, they add up to {sum(weights.values()):g}")
    threshold = top.get("ready_threshold", float)
    if not 1 <= threshold <= 5:
        top.fail("must lie between 1 and 5", "ready_threshold")
    rules: dict[str, dict[str, Any]] = {}
    if "rules" in top.data:
        rr = top.sub("rules")
        rr.only(*SCORECARD_DIMENSIONS)
        for dim in SCORECARD_DIMENSIONS:
            d = rr.sub(dim)
            rules[dim] = {}
            for name, value in d.data.items():
                if isinstance(value, dict):
                    rules[dim][str(name)] = _threshold(d.sub(str(name)))
                elif isinstance(value, (int, float)) and not isinstance(value, bool) and 1 <= value <= 5:
                    rules[dim][str(name)] = float(value)
                else:
                    d.fail("must be a score from 1 to 5 or a threshold rule", str(name))
    advice: dict[str, str] = {}
    if "advice" in top.data:
        ad = top.sub("advice")
        ad.only(*SCORECARD_DIMENSIONS)
        advice = {dim: ad.get(dim, str) for dim in SCORECARD_DIMENSIONS}
    return Scorecard(weights, threshold, rules, advice)


@dataclass(frozen=True)
class EvaluationSettings:
    metrics_by_goal: dict[str, list[str]]
    max_new_tokens_margin: int
    max_new_tokens_cap: int


EVALUATION_METRICS = ("exact_match", "token_f1", "rouge_l", "chrf", "accuracy", "function_call", "argument_f1",
                      "json_valid")


@functools.cache
def load_evaluation() -> EvaluationSettings:
    top = _read("evaluation.yaml")
    top.only("version", "metrics_by_goal", "max_new_tokens_margin", "max_new_tokens_cap")
    m = top.sub("metrics_by_goal")
    m.only(*GOALS)
    by_goal = {}
    for goal in GOALS:
        names = m.strings(goal)
        for name in names:
            if name not in EVALUATION_METRICS:
                m.fail(f"{name!r} is not one of {', '.join(EVALUATION_METRICS)}", goal)
        by_goal[goal] = names
    return EvaluationSettings(by_goal, top.get("max_new_tokens_margin", int), top.get("max_new_tokens_cap", int))


# --------------------------------------------------------------------------- architectures and models

@dataclass(frozen=True)
class LinearModule:
    name: str
    shape: str


@dataclass(frozen=True)
class Architecture:
    family: str
    model_types: list[str]
    mlp: str
    norm: str
    bias: str
    """none | qkv | all"""
    learned_positions: bool
    modules: list[LinearModule]
    norms_per_block: int = 2


@dataclass(frozen=True)
class Architectures:
    families: dict[str, Architecture]
    default_family: str

    def for_model_type(self, model_type: str | None) -> tuple[Architecture, bool]:
        """The family of `model_type`, and whether it was known (False: the default family is used)."""
        for arch in self.families.values():
            if model_type in arch.model_types:
                return arch, True
        return self.families[self.default_family], False


@functools.cache
def load_architectures() -> Architectures:
    top = _read("architectures.yaml")
    top.only("version", "families", "default_family")
    fam = top.sub("families")
    families: dict[str, Architecture] = {}
    for name in fam.data:
        r = fam.sub(str(name))
        r.only("model_types", "mlp", "norm", "norms_per_block", "bias", "learned_positions", "modules")
        modules = []
        for j, m in enumerate(r.get("modules", list)):
            mr = _Reader(top.file, m, f"families.{name}.modules[{j}]")
            mr.only("name", "shape")
            modules.append(LinearModule(mr.get("name", str), mr.choice("shape", MODULE_SHAPES)))
        families[str(name)] = Architecture(
            family=str(name), model_types=r.strings("model_types"), mlp=r.choice("mlp", ("gated", "plain")),
            norm=r.choice("norm", ("rms", "layer")), bias=r.choice("bias", ("none", "qkv", "all")),
            learned_positions=r.get("learned_positions", bool), modules=modules,
            norms_per_block=r.get("norms_per_block", int, 2))
    default = top.get("default_family", str)
    if default not in families:
        top.fail(f"{default!r} is not a family above", "default_family")
    return Architectures(families, default)


@functools.cache
def load_model_catalog() -> dict[str, dict[str, Any]]:
    """config.json-style dicts of popular hub models, by id and by alias."""
    top = _read("models.yaml")
    top.only("version", "models")
    catalog: dict[str, dict[str, Any]] = {}
    for i, raw in enumerate(top.get("models", list)):
        r = _Reader(top.file, raw, f"models[{i}]")
        mid = r.get("id", str)
        r.get("model_type", str)
        r.get("vocab_size", int)
        config = {k: v for k, v in raw.items() if k not in ("id", "aliases")}
        config["_name_or_path"] = mid
        for name in [mid, *r.strings("aliases", [])]:
            catalog[name.lower()] = config
    return catalog


# --------------------------------------------------------------------------- estimator constants

@dataclass(frozen=True)
class EstimatorConstants:
    cuda_context_gb: float
    allocator_slack: float
    estimate_error: dict[str, tuple[float, str]]
    """device -> (relative error of the memory estimate, where that figure comes from)"""
    cpu_reserved_gb: float
    nf4_block_size: int
    nf4_double_quant_block: int
    logits_bytes_per_element: float
    mfu: dict[str, float]
    cpu_flops_per_cycle: dict[str, float]
    """fp32 FLOP per cycle and core by SIMD kind (avx512, avx2, neon, default)"""
    cpu_default_ghz: float
    cpu_extra_core_efficiency: float
    method_speed_factor: dict[str, dict[str, float]] = field(default_factory=dict)
    """device (cuda | cpu) -> method -> extra wall time beyond the FLOP count"""
    cpu_heap_retention: dict[str, float] = field(default_factory=lambda: {"default": 0.0})
    cpu_heap_max_block_mb: float = 32.0
    cpu_runtime_overhead_gb: float = 0.0
    chars_per_token: float = 4.0
    gpu_tflops: dict[str, float] = field(default_factory=dict)

    def gpu_peak_tflops(self, name: str) -> tuple[float, bool]:
        """Peak dense 16-bit TFLOP/s for a GPU name, and whether the name was recognised."""
        for key in sorted((k for k in self.gpu_tflops if k != "default"), key=len, reverse=True):
            if key.lower() in name.lower():
                return self.gpu_tflops[key], True
        return self.gpu_tflops["default"], False


def _estimate_error(r: _Reader) -> dict[str, tuple[float, str]]:
    r.only("cuda", "mps", "cpu")
    out = {}
    for device in ("cuda", "mps", "cpu"):
        entry = r.sub(device)
        entry.only("relative", "basis")
        relative = entry.get("relative", float)
        if not 0 <= relative < 1:
            entry.fail(f"must be between 0 and 1, got {relative}", "relative")
        out[device] = (relative, entry.get("basis", str))
    return out


@functools.cache
def load_estimator_constants() -> EstimatorConstants:
    top = _read("estimator.yaml")
    top.only("version", "memory", "time", "gpus")
    m, t, g = top.sub("memory"), top.sub("time"), top.sub("gpus")
    m.only("cuda_context_gb", "allocator_slack", "estimate_error", "cpu_reserved_gb", "nf4_block_size",
           "nf4_double_quant_block", "logits_bytes_per_element",
           "cpu_heap_retention", "cpu_heap_max_block_mb", "cpu_runtime_overhead_gb")
    heap_r = m.sub("cpu_heap_retention")
    heap_r.only("default", *RUNNABLE_METHODS)
    heap = {str(key): heap_r.get(str(key), float) for key in heap_r.data}
    if "default" not in heap:
        heap_r.fail("missing", "default")
    t.only("mfu", "cpu_flops_per_cycle", "cpu_default_ghz", "cpu_extra_core_efficiency", "method_speed_factor",
           "chars_per_token")
    mfu_r, speed_r, cycle_r = t.sub("mfu"), t.sub("method_speed_factor"), t.sub("cpu_flops_per_cycle")
    mfu_r.only("cuda", "mps", "cpu")
    speed_r.only("cuda", "cpu")
    cycle_r.only("avx512", "avx2", "neon", "default")
    speed: dict[str, dict[str, float]] = {}
    for device in ("cuda", "cpu"):
        per_device = speed_r.sub(device)
        per_device.only(*RUNNABLE_METHODS)
        speed[device] = {str(k): per_device.get(str(k), float) for k in per_device.data}
    gpus = {str(k): g.get(str(k), float) for k in g.data}
    if "default" not in gpus:
        g.fail("missing", "default")
    return EstimatorConstants(
        cuda_context_gb=m.get("cuda_context_gb", float), allocator_slack=m.get("allocator_slack", float),
        estimate_error=_estimate_error(m.sub("estimate_error")), cpu_reserved_gb=m.get("cpu_reserved_gb", float),
        nf4_block_size=m.get("nf4_block_size", int), nf4_double_quant_block=m.get("nf4_double_quant_block", int),
        logits_bytes_per_element=m.get("logits_bytes_per_element", float),
        mfu={k: mfu_r.get(k, float) for k in ("cuda", "mps", "cpu")},
        cpu_flops_per_cycle={k: cycle_r.get(k, float) for k in ("avx512", "avx2", "neon", "default")},
        cpu_default_ghz=t.get("cpu_default_ghz", float), method_speed_factor=speed,
        cpu_extra_core_efficiency=t.get("cpu_extra_core_efficiency", float),
        chars_per_token=t.get("chars_per_token", float), gpu_tflops=gpus,
        cpu_heap_retention=heap, cpu_heap_max_block_mb=m.get("cpu_heap_max_block_mb", float),
        cpu_runtime_overhead_gb=m.get("cpu_runtime_overhead_gb", float),
    )


# --------------------------------------------------------------------------- distributed training

SHARDABLE_STATES = ("weights", "gradients", "optimizer")
DISTRIBUTED_STRATEGIES = ("ddp", "fsdp", "fsdp_grad_op", "deepspeed_zero2", "deepspeed_zero3")


@dataclass(frozen=True)
class Strategy:
    id: str
    name: str
    shards: tuple[str, ...]
    """which of weights, gradients, optimizer are split across the processes"""
    engine: str
    """accelerate (torch DDP/FSDP, always installed) | deepspeed (an extra package)"""
    why: str


@dataclass(frozen=True)
class DistributedKnowledge:
    strategies: dict[str, Strategy]
    not_shardable: tuple[str, ...]
    efficiency_ddp: float
    efficiency_sharded: float
    efficiency_across_machines: float
    main_process_port: int

    def efficiency(self, strategy: str, machines: int) -> float:
        """Share of the ideal N-fold speed-up kept by a strategy."""
        base = self.efficiency_ddp if not self.strategies[strategy].shards else self.efficiency_sharded
        return base * (self.efficiency_across_machines if machines > 1 else 1.0)


@functools.cache
def load_distributed() -> DistributedKnowledge:
    top = _read("distributed.yaml")
    top.only("version", "strategies", "not_shardable", "scaling_efficiency", "main_process_port")
    strategies = {}
    s_r = top.sub("strategies")
    s_r.only(*DISTRIBUTED_STRATEGIES)
    for sid in s_r.data:
        r = s_r.sub(str(sid))
        r.only("name", "shards", "engine", "why")
        shards = tuple(r.get("shards", list))
        bad = [x for x in shards if x not in SHARDABLE_STATES]
        if bad:
            r.fail(f"unknown state {bad[0]!r} (allowed: {', '.join(SHARDABLE_STATES)})", "shards")
        engine = r.get("engine", str)
        if engine not in ("accelerate", "deepspeed"):
            r.fail("must be accelerate or deepspeed", "engine")
        strategies[str(sid)] = Strategy(str(sid), r.get("name", str), shards, engine, r.get("why", str))
    if "ddp" not in strategies:
        s_r.fail("missing", "ddp")
    not_shardable = tuple(top.strings("not_shardable"))
    unknown = [m for m in not_shardable if m not in RUNNABLE_METHODS]
    if unknown:
        top.fail(f"unknown method {unknown[0]!r}", "not_shardable")
    eff = top.sub("scaling_efficiency")
    eff.only("ddp", "sharded", "across_machines")
    values = {k: eff.get(k, float) for k in ("ddp", "sharded", "across_machines")}
    for k, v in values.items():
        if not 0 < v <= 1:
            eff.fail(f"must be in (0, 1], got {v}", k)
    return DistributedKnowledge(strategies, not_shardable, values["ddp"], values["sharded"],
                                values["across_machines"], top.get("main_process_port", int))


def load_all() -> None:
    """Load and validate every knowledge file (a malformed one raises KnowledgeError)."""
    load_methods()
    load_decision_table()
    load_hyperparameters()
    load_scorecard()
    load_evaluation()
    load_architectures()
    load_model_catalog()
    load_estimator_constants()
    load_distributed()
