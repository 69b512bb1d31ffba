"""The recommendation: answers + hardware + data profile + model profile -> method, settings, costs, reasons.

`recommend()` is pure and deterministic, in four named stages: select the method by the decision table,
scale out over the processes, fit the method into memory (falling back by the table when it does not fit),
and assemble the Recommendation. `gather_inputs()` does the I/O around it: it reads the data files, the
model's config and (unless the answers state it) the hardware of this machine.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from advisor.alternatives import alternatives
from advisor.answers import Answers
from advisor.data_probe import find_overlap
from advisor.estimate import EvaluationEstimate, default_bits, estimate_evaluation, estimate_memory, estimate_time
from advisor.fit import (
    Fit,
    available_memory_gb,
    data_sizer,
    fit_memory,
    gpus_to_fit,
    largest_fitting_params_b,
    scales_for,
)
from advisor.hardware import Hardware
from advisor.inputs import Inputs, gather_inputs
from advisor.model_profile import ModelProfile
from advisor.settings import (
    advised_ranges,
    max_length_for,
    method_settings,
    method_warnings,
    override_warnings,
    precision_for,
)
from advisor.test_split import check_test_split
from knowledge import (
    load_decision_table,
    load_distributed,
    load_estimator_constants,
    load_evaluation,
    load_hyperparameters,
    load_methods,
)
from knowledge.architectures import licence_problem
from knowledge.errors import InputError
from runner.plan import step_schedule
from runner.records import general_passages

__all__ = ["Inputs", "Recommendation", "available_memory_gb", "evaluation_time", "gather_inputs", "recommend"]

#: Tokens a chat template adds around one example (role markers, BOS/EOS), when no tokenizer is used.
TEMPLATE_TOKENS = 16
#: Tokens per example assumed when the answers give only a count of examples, not a file.
ASSUMED_TOKENS_PER_EXAMPLE = 300


@dataclass
class Recommendation:
    """What `recommend --json` prints (the contract of ARCHITECTURE.md), and what recommendation.json holds."""
    method: str
    method_name: str
    alternatives: list[dict[str, Any]]
    """[{method, why_not, estimated_gb, fits}]"""
    hyperparameters: dict[str, Any]
    advised_ranges: dict[str, list[float]]
    memory: dict[str, Any]
    """estimated_gb, uncertainty_gb, relative_error, error_basis, available_gb, usable_gb, fits, device,
    breakdown, detail, summary, assumptions"""
    time: dict[str, Any]
    """estimated_hours, basis, tokens"""
    reasons: list[str]
    warnings: list[str]
    rules_applied: list[str]
    trainable_params: int
    trainable_percent: float
    data: dict[str, Any]
    model: dict[str, Any]
    hardware: dict[str, Any]
    distributed: dict[str, Any]
    serving: dict[str, Any]
    evaluation: dict[str, Any] = field(default_factory=dict)
    """The test split: test_examples, test_source, primary_metric, smallest_detectable, statement, ..."""
    evidence: list[dict[str, Any]] = field(default_factory=list)
    """For each rule applied that knowledge/evidence.yaml covers: rule, guide, published, measured (a sentence or
    None), agrees (whether the project's measurement found the rule's method among the best; None: not measured)."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> Recommendation:
        return Recommendation(**data)


# --------------------------------------------------------------------------- what the stages share

@dataclass
class Trace:
    """What the stages found and decided, in the order they did: shown to the user as reasons and warnings."""
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    """method -> why it is not the one recommended"""


@dataclass(frozen=True)
class DataFacts:
    examples: int
    train_examples: int
    tokens_mean: float
    tokens_p95: float | None
    tokens_p99: float | None
    source: str
    """measured (from the file) | stated (data.examples)"""
    lengths: list[int] | None = None
    """Tokens of each example of the file (counted with the model's tokenizer, or estimated from characters)."""
    tokens_counted: bool = False
    """True: the lengths were counted with the model's own tokenizer and chat template."""

    @property
    def min_length(self) -> int:
        """The fit never shortens max_length below the 95th-percentile example."""
        return int(self.tokens_p95) if self.tokens_p95 else 256


@dataclass(frozen=True)
class Processes:
    per_node: int
    machines: int
    strategy: str | None
    """the user's overrides.distributed, or None: chosen by the memory fit"""

    @property
    def total(self) -> int:
        return self.per_node * self.machines


def _data_facts(inputs: Inputs, trace: Trace) -> DataFacts:
    answers, data = inputs.answers, inputs.data
    lengths: list[int] | None = None
    counted = False
    if data is not None:
        chars = data.total_chars
        assert chars is not None
        cpt = load_estimator_constants().chars_per_token
        examples, source = data.examples, "measured"
        tokens_mean = chars.mean / cpt + TEMPLATE_TOKENS
        tokens_p95: float | None = chars.p95 / cpt + TEMPLATE_TOKENS
        tokens_p99: float | None = chars.p99 / cpt + TEMPLATE_TOKENS
        if data.total_tokens is not None and len(data.example_tokens) == data.examples:
            counted, lengths = True, data.example_tokens
            tokens_mean, tokens_p95, tokens_p99 = data.total_tokens.mean, data.total_tokens.p95, data.total_tokens.p99
        else:
            lengths = [math.ceil(c / cpt) + TEMPLATE_TOKENS for c in data.example_chars]
        if data.problem_counts:
            problems = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(data.problem_counts.items()))
            trace.warnings.append(f"{answers.data.path}: {problems} (see: finetune-advisor inspect-data "
                                  f"{answers.data.path})")
    else:
        examples, source = int(answers.data.examples or 0), "stated"
        tokens_mean, tokens_p95, tokens_p99 = float(ASSUMED_TOKENS_PER_EXAMPLE), None, None
    ranges = load_hyperparameters()
    held_out = ranges.split_validation + (0 if answers.data.test_path else ranges.split_test)
    if inputs.test_data is not None and data is not None:
        for problem in find_overlap(data, inputs.test_data):
            trace.warnings.append(problem.message)
    return DataFacts(examples, max(1, int(examples * (1 - held_out))), tokens_mean, tokens_p95, tokens_p99, source,
                     lengths, counted)


# --------------------------------------------------------------------------- stage 1: the method

def _select_method(inputs: Inputs, facts: DataFacts, overrides: dict[str, Any], trace: Trace) -> tuple[str, bool]:
    """The decision table's method (goal, then priority, then deploy target), or the user's; and whether the
    user chose it (then memory never makes the table fall back)."""
    answers = inputs.answers
    table = load_decision_table()
    known = {"goal": answers.goal, "priority": answers.priority, "deploy": answers.deploy,
             "examples": facts.examples}
    method = ""
    for stage in ("goal", "priority", "deploy"):
        rule = next((r for r in table.stage(stage) if r.matches(known)), None)
        if rule is None or rule.method is None:
            continue
        if method and rule.method != method:
            trace.rejected[method] = f"replaced by rule {rule.id}: {rule.reason.split(':')[0]}"
        method = rule.method
        trace.rules.append(rule.id)
        trace.reasons.append(rule.reason)
    advice = table.goals[answers.goal]
    low, high = advice.advised_examples
    if facts.examples < low:
        trace.warnings.append(advice.too_few.format(n=facts.examples, low=low, high=high))
    elif facts.examples > high:
        trace.warnings.append(advice.too_many.format(n=facts.examples, low=low, high=high))
    else:
        trace.reasons.append(f"{facts.examples} examples is within the advised {low}-{high} for {answers.goal}")
    user_method = overrides.pop("method", None)
    if user_method and user_method != method:
        trace.rejected[method] = f"recommended by the table, but you chose {user_method} (overrides.method)"
        trace.reasons.append(f"{user_method}: chosen by you (overrides.method); the table recommends {method}")
        method = user_method
    trace.warnings.extend(method_warnings(method, answers, inputs.model, facts.examples))
    return method, bool(user_method)


# --------------------------------------------------------------------------- stage 2: processes

def _scale_out(inputs: Inputs, overrides: dict[str, Any], trace: Trace) -> Processes:
    """Training processes: the GPUs of this machine (or CPU processes) times the machines."""
    answers = inputs.answers
    machines = answers.hardware.nodes if answers.hardware is not None else 1
    gpus_here = len(inputs.hardware.gpus)
    per_node = overrides.pop("processes_per_node", None) or max(1, gpus_here)
    strategy = overrides.pop("distributed", None)
    if gpus_here and per_node > gpus_here:
        raise InputError(f"{per_node} processes a machine, but {gpus_here} GPU(s) are listed",
                         file=_source(answers), key="overrides.processes_per_node",
                         hint="one process per GPU: remove it, or list every GPU under hardware.gpus")
    if strategy and per_node * machines == 1:
        trace.warnings.append(f"overrides.distributed {strategy} has no effect with one process: list several GPUs "
                              "(hardware.gpus) or machines (hardware.nodes), or set overrides.processes_per_node")
        strategy = None
    if machines > 1 and not (answers.hardware and answers.hardware.main_address):
        trace.warnings.append(f"{machines} machines but no hardware.main_address: the launch commands say "
                              "MAIN_NODE_ADDRESS; set it to machine 0's address (host:port) that the others can reach")
    if per_node * machines > 1:
        trace.reasons.append(f"{per_node * machines} training processes ({per_node} a machine x {machines} "
                             "machine(s)) through accelerate launch")
    return Processes(per_node, machines, strategy)


# --------------------------------------------------------------------------- stage 3: memory

@dataclass(frozen=True)
class Budget:
    """The memory one process has, and what the plan may use of it with the estimate's error kept free."""
    available: float
    usable: float
    device: str
    error: float
    error_basis: str


def _budget(inputs: Inputs, processes: Processes) -> Budget:
    available, device = available_memory_gb(inputs.hardware)
    if device == "cpu" and processes.per_node > 1:  # the processes of a machine share its RAM
        available = round(available / processes.per_node, 2)
    # the plan must fit at the estimate's measured worst: X x (1 + error) <= available
    constants = load_estimator_constants()
    error, basis = constants.estimate_error[device if device in constants.estimate_error else "cuda"]
    return Budget(available, round(available / (1 + error), 2), device, error, basis)


def _settings_that_fit(method: str, inputs: Inputs, facts: DataFacts, overrides: dict[str, Any],
                       processes: Processes, budget: Budget) -> tuple[dict[str, Any], Fit]:
    """The method's settings with the user's overrides, and the fastest configuration that fits: every strategy
    at the planned length first (sharding beats truncating the examples), then shorter lengths."""
    answers = inputs.answers
    fixed = _fixed(overrides)
    hp = method_settings(method, answers.goal, facts.examples,
                         max_length_for(facts.tokens_p99, inputs.model, load_hyperparameters()), inputs.model.params_b)
    hp["precision"] = precision_for(method, budget.device, inputs.hardware)
    for key, value in overrides.items():
        if key in hp or key in ("batch_size", "gradient_accumulation", "gradient_checkpointing", "bits",
                                "optimizer", "packing", "precision"):
            hp[key] = value
    card = load_methods()[method]
    why = card.incompatible_with("gradient_checkpointing")
    if fixed.get("gradient_checkpointing") and why:
        raise InputError(f"{method} cannot be trained with gradient checkpointing: {why.why}",
                         file=_source(answers), key="overrides.gradient_checkpointing",
                         hint="remove it, or choose lora/qlora")
    try:
        whole = fixed if "max_length" in fixed else {**fixed, "max_length": hp["max_length"]}
        fit = None
        for allowed in (whole, fixed):
            for scale in scales_for(method, processes.total, processes.machines, processes.strategy):
                sizer = data_sizer(facts.lengths, method, hp, budget.device, facts.train_examples,
                                   scale.processes, answers.seed)
                fit = fit_memory(method, hp, inputs.model, budget.device, budget.usable, allowed,
                                 facts.min_length, scale, sizer)
                if fit.fits:
                    return hp, fit
        assert fit is not None
        return hp, fit
    except InputError as exc:  # a hand-set value the method cannot use: name it as the user wrote it
        key = f"overrides.{exc.key}" if exc.key else "overrides"
        raise InputError(exc.message, file=_source(answers), key=key, hint=exc.hint) from None


def _fit_memory(method: str, user_chose: bool, inputs: Inputs, facts: DataFacts, overrides: dict[str, Any],
                processes: Processes, budget: Budget, trace: Trace) -> tuple[str, dict[str, Any], Fit]:
    """The method and settings that fit; when the first does not, the table's fallbacks (rule H1), then advice:
    a smaller model, or more GPUs."""
    table = load_decision_table()
    hp, fit = _settings_that_fit(method, inputs, facts, overrides, processes, budget)
    first_method, first_hp = method, hp
    while not fit.fits and not user_chose:
        nxt = table.fallback.get(method)
        if nxt is None:
            break
        h1 = table.rule("H1")
        trace.rejected[method] = (f"needs {fit.memory.estimated_gb} GB with the smallest batch, {budget.usable} GB "
                                  "usable")
        trace.rules.append(h1.id)
        trace.reasons.append(h1.reason.format(from_method=method, to_method=nxt, needed_gb=fit.memory.estimated_gb,
                                              available_gb=round(budget.available, 1)))
        method = nxt
        hp, fit = _settings_that_fit(method, inputs, facts, overrides, processes, budget)
    if not fit.fits:
        suggestion = largest_fitting_params_b(inputs.model, hp, budget.device, budget.usable)
        if suggestion is not None and not user_chose:
            trace.rules.append(table.smaller_model_rule_id)
            trace.warnings.append(table.smaller_model_reason.format(
                needed_gb=fit.memory.estimated_gb, available_gb=round(budget.available, 1), fit_params_b=suggestion))
        elif user_chose:
            trace.warnings.append(f"{method} needs {fit.memory.estimated_gb} GB even with batch 1, {budget.usable} GB "
                                  "usable: it will run out of memory; remove overrides.method to let the table fall "
                                  "back")
        else:
            trace.warnings.append(f"nothing fits in {budget.available:g} GB: even a 0.05B model would not; "
                                  "train on a machine with more memory")
    if budget.device == "cuda" and (method != first_method or not fit.fits):  # one GPU (or these) is not enough
        n = gpus_to_fit(first_method, first_hp, inputs.model, budget.usable, facts.min_length, processes.machines)
        if n is not None and n * processes.machines > processes.total:
            on_each = f" on each of {processes.machines} machines" if processes.machines > 1 else ""
            trace.warnings.append(f"scale out: {first_method} fits with FSDP (weights, gradients and optimizer "
                                  f"states sharded) over {n} GPUs{on_each} like these; list them under "
                                  "hardware.gpus and train with accelerate (README: Several GPUs and machines)")
    if fit.shortened_from:
        trace.warnings.append(f"max_length shortened from {fit.shortened_from} to {fit.config.seq_len} tokens to fit "
                              "in memory: longer examples will be truncated")
    elif facts.tokens_p95 and fit.config.seq_len < facts.tokens_p95:
        how = "counted with the model's tokenizer" if facts.tokens_counted else "estimated at 4 characters per token"
        trace.warnings.append(f"more than 5% of the examples are longer than max_length {fit.config.seq_len} "
                              f"({how}): they will be truncated")
    card = load_methods()[method]
    if budget.device == "cpu" and card.cpu_note:
        trace.warnings.append(f"{card.name}: {card.cpu_note}")
    return method, hp, fit


def _fixed(overrides: dict[str, Any]) -> dict[str, Any]:
    """The fit's knobs the user set by hand (the fit never changes those)."""
    return {k: overrides[k] for k in ("batch_size", "gradient_checkpointing", "max_length") if k in overrides}


def _source(answers: Answers) -> str | None:
    return str(answers.source) if answers.source else None


# --------------------------------------------------------------------------- the recommendation

def recommend(inputs: Inputs) -> Recommendation:
    """The recommendation. Pure: the same inputs give the same output."""
    overrides = dict(inputs.answers.overrides)
    trace = Trace()
    facts = _data_facts(inputs, trace)
    evaluation, reasons, warnings = check_test_split(inputs.answers, inputs.data, inputs.test_data, facts.examples)
    trace.reasons.extend(reasons)
    trace.warnings.extend(warnings)
    method, user_chose = _select_method(inputs, facts, overrides, trace)
    processes = _scale_out(inputs, overrides, trace)
    budget = _budget(inputs, processes)
    method, hp, fit = _fit_memory(method, user_chose, inputs, facts, overrides, processes, budget, trace)
    return _assemble(method, hp, fit, inputs, facts, overrides, processes, budget, trace, evaluation)


def evaluation_time(inputs: Inputs, method: str, device: str, *, examples: int, speed: bool, tokens_mean: float,
                    tokens_p99: float | None, base_measured: bool = True) -> EvaluationEstimate:
    """How long the evaluation after training takes for `examples` test examples, from the answers' lengths (the
    longest answer bounds generation, as runner/evaluate.py sets max_new_tokens from the longest reference), the
    examples' mean length (tokens, the prompt and its answer) and the general-text set."""
    answers, hardware = inputs.answers, inputs.hardware
    per_token = load_estimator_constants().chars_per_token
    settings = load_evaluation()
    profile = inputs.test_data or inputs.data
    if profile is not None and profile.response_chars is not None:
        longest = math.ceil(profile.response_chars.max / per_token)
        answer_mean = profile.response_chars.mean / per_token
    else:  # the data is not at hand (a hub dataset, data.examples stated): the longest example bounds its answer
        longest = int(tokens_p99 or tokens_mean)
        answer_mean = tokens_mean / 2
    general_set = answers.evaluation.general_set
    try:
        passages = general_passages(general_set if general_set == "builtin" else str(answers.resolve(general_set)))
    except InputError as exc:
        raise InputError(exc.message, file=exc.file, key=exc.key,
                         hint=f"{exc.hint or ''} (relative paths are read from the answers file's folder)".strip()
                         ) from None
    return estimate_evaluation(
        inputs.model, method, device, examples=examples, prompt_tokens=max(1.0, tokens_mean - answer_mean),
        max_new_tokens=min(settings.max_new_tokens_cap, longest + settings.max_new_tokens_margin),
        general_texts=len(passages), general_tokens=int(sum(map(len, passages)) / per_token), speed=speed,
        base_measured=base_measured, device_name=_timed_gpu(hardware), cpu_cores=hardware.cpu_cores,
        cpu_vector=hardware.cpu_vector, cpu_ghz=hardware.cpu_ghz)


def _timed_gpu(hardware: Hardware) -> str | None:
    """The GPU the time estimates are made for: the smallest, which every process must fit and wait for."""
    return min(hardware.gpus, key=lambda g: g.memory_gb).name if hardware.gpus else None


def _assemble(method: str, hp: dict[str, Any], fit: Fit, inputs: Inputs, facts: DataFacts,
              overrides: dict[str, Any], processes: Processes, budget: Budget, trace: Trace,
              evaluation: dict[str, Any]) -> Recommendation:
    """The chosen configuration's settings, time, alternatives and costs, as the Recommendation."""
    answers, model = inputs.answers, inputs.model
    ranges = load_hyperparameters()
    batch = fit.config.batch_size
    ga_low, ga_high = ranges.gradient_accumulation_range
    accumulation = overrides.get("gradient_accumulation",
                                 max(ga_low, min(ga_high, ranges.target_effective_batch // (batch * processes.total))))
    hp.update(batch_size=batch, gradient_accumulation=accumulation, max_length=fit.config.seq_len,
              gradient_checkpointing=fit.config.gradient_checkpointing,
              bits=fit.config.bits or default_bits(method, budget.device))
    trace.warnings.extend(override_warnings(method, overrides, hp, facts.tokens_p99, model.params_b))
    if "learning_rate" not in overrides:
        band = ranges.learning_rate(method, model.params_b)
        size = f"up to {band.up_to_b:g}B" if band.up_to_b is not None else "of any size"
        trace.reasons.append(f"learning rate {band.default:g} for {method} on models {size} ({band.source})")

    card = load_methods()[method]
    if fit.batches is not None:  # the tokens the run computes (padding included) and trains on
        computed, trained = fit.batches.computed, fit.batches.trained
    else:
        per_example = min(fit.config.seq_len, facts.tokens_mean if batch == 1 or facts.tokens_p95 is None
                          else (facts.tokens_mean + facts.tokens_p95) / 2)
        computed = trained = int(facts.train_examples * hp["epochs"] * per_example)
    # the validation evaluations the Trainer runs (plan.json's schedule), forward only, at the same padding
    steps, _, evaluations = step_schedule(facts.train_examples, batch, accumulation, fit.config.processes,
                                          hp["epochs"], overrides.get("max_steps"))
    if overrides.get("max_steps"):  # a run cut short: the tokens of the steps it takes
        share = min(1.0, steps * batch * accumulation * fit.config.processes / max(1, facts.train_examples *
                                                                                   hp["epochs"]))
        computed, trained = int(computed * share), int(trained * share)
    validation = int(facts.examples * ranges.split_validation) if not answers.data.validation_path else 0
    eval_tokens = int(evaluations * validation * computed / max(1, facts.train_examples * hp["epochs"]))
    hardware = inputs.hardware
    gpu_name = _timed_gpu(hardware)
    attention_length = fit.batches.attention_length if fit.batches is not None else None
    eval_batches = evaluations * math.ceil(validation / batch)
    time = estimate_time(model, fit.config, tokens=computed, trained_tokens=trained, eval_tokens=eval_tokens,
                         steps=steps * accumulation + eval_batches, optimizer_steps=steps,
                         attention_length=attention_length,
                         device_name=gpu_name, cpu_cores=hardware.cpu_cores, cpu_vector=hardware.cpu_vector,
                         cpu_ghz=hardware.cpu_ghz)
    after = evaluation_time(inputs, method, budget.device, examples=evaluation["test_examples"],
                            speed=answers.evaluation.speed, tokens_mean=facts.tokens_mean, tokens_p99=facts.tokens_p99)
    if budget.device == "cpu" and time.estimated_hours > 24:
        trace.warnings.append(f"training on the CPU would take about {time.estimated_hours:.0f} hours: use a machine "
                              "with a GPU, or a smaller model")

    others = alternatives(method, inputs, facts, budget, trace)
    evidence = _evidence(trace)
    licence = licence_problem(answers.model.name_or_path, answers.use)
    if licence:
        trace.warnings.append(licence)
    memory = fit.memory
    batches = _batch_summary(fit, model, facts)
    return Recommendation(
        method=method, method_name=card.name, alternatives=others, hyperparameters=hp,
        advised_ranges=advised_ranges(method, model.params_b),
        memory={"estimated_gb": memory.estimated_gb, "uncertainty_gb": memory.uncertainty_gb,
                "relative_error": budget.error, "error_basis": budget.error_basis,
                "available_gb": round(budget.available, 2), "usable_gb": budget.usable, "fits": fit.fits,
                "device": budget.device, "breakdown": memory.breakdown, "detail": memory.detail,
                "summary": f"needs {memory.estimated_gb:g} GB ± {memory.uncertainty_gb:g} of {budget.available:g} GB "
                           f"(the estimate's error, ± {budget.error:.0%}, is kept free)"
                           + (f"; {batches['worst_case_gb']:g} GB if the longest examples meet in one batch"
                              if batches.get("worst_case_gb", 0) > memory.estimated_gb else ""),
                "assumptions": memory.assumptions, **batches},
        time={"estimated_hours": time.estimated_hours, "seconds": round(time.seconds, 1), "basis": time.basis,
              "formula": time.formula,
              "tokens": time.tokens, "trained_tokens": time.trained_tokens, "tokens_per_s": time.tokens_per_s,
              "evaluation_seconds": round(after.seconds, 1), "evaluation_basis": after.basis,
              "evaluation_parts": after.to_dict()["parts"]},
        reasons=trace.reasons, warnings=trace.warnings, rules_applied=trace.rules,
        trainable_params=memory.trainable_params,
        trainable_percent=round(100 * memory.trainable_params / model.total_params, 4),
        data={"examples": facts.examples, "train_examples": facts.train_examples, "source": facts.source,
              "tokens_per_example": round(facts.tokens_mean, 1),
              "tokens_p99": round(facts.tokens_p99, 1) if facts.tokens_p99 else None,
              "layout": inputs.data.layout if inputs.data else answers.data.format},
        model={"name": model.name, "params_b": round(model.params_b, 3), "source": model.source,
               "model_type": model.model_type, "notes": model.notes},
        hardware={"device": budget.device, "gpus": [g.name for g in hardware.gpus], "source": hardware.source},
        distributed=_distributed_summary(fit.config.strategy, fit.config.processes, processes, answers,
                                         batch * accumulation),
        serving={"vllm_adapter": card.serving.vllm_adapter, "mergeable": card.serving.mergeable,
                 "note": card.serving.merge_note},
        evaluation=evaluation, evidence=evidence,
    )


def _evidence(trace: Trace) -> list[dict[str, Any]]:
    """Each applied rule's evidence; a rule the project's own measurement contradicts is said in plain words,
    with the pilot suggested (the rule itself stays as the guide states it)."""
    from knowledge.evidence import load_evidence

    table, known = load_decision_table(), load_evidence().rules
    out = []
    for rid in trace.rules:
        if rid not in known:
            continue
        e, method = known[rid], next((r.method for r in table.rules if r.id == rid), None)
        measured, agrees = None, e.agrees(method) if method else None
        if e.measured is not None:
            m = e.measured
            mine = m.result(method) if method else None
            best = m.result(m.best[0])
            measured = (f"measured here on {m.model} ({m.date}, {m.data}): "
                        + ", ".join(f"{r.method} {r.tuned:g}" for r in m.results[:4]) + f" {m.metric} against "
                        f"the base's {m.base:g}; {m.finding}")
            if agrees is False and mine is not None and best is not None:
                trace.warnings.append(
                    f"rule {rid} advises {method}, but the project's own measurement ({m.model}, {m.goal} demo) "
                    f"found {_and(m.best)} better ({best.tuned:g} against {mine.tuned:g} {m.metric}); "
                    "check which holds on your data: finetune-advisor pilot YOUR_ANSWERS.yaml")
        out.append({"rule": rid, "guide": e.guide, "published": e.published, "measured": measured,
                    "agrees": agrees})
    return out


def _and(words: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _batch_summary(fit: Fit, model: ModelProfile, facts: DataFacts) -> dict[str, Any]:
    """The batch the estimate holds (from the data's lengths) and the worst case, for the memory section."""
    if fit.batches is None:
        return {"batch_tokens": fit.config.batch_size * fit.config.seq_len, "batch_basis": "every example padded "
                "to max_length (no data file to measure)"}
    b = fit.batches
    worst = estimate_memory(model, dataclasses.replace(fit.config, batch_tokens=b.worst))
    how = "counted with the model's tokenizer" if facts.tokens_counted else "estimated from characters"
    return {"batch_tokens": b.typical, "worst_batch_tokens": b.worst, "worst_case_gb": worst.estimated_gb,
            "batch_basis": f"the largest batch of the run in 9 of 10 shuffles ({b.runs} simulated): "
                           f"{b.typical:,} tokens (lengths {how}); the longest examples together: {b.worst:,}"}


def _distributed_summary(strategy: str | None, total: int, processes: Processes, answers: Answers,
                         batch_per_step: int) -> dict[str, Any]:
    """How training is spread: strategy, processes, machines, and the global batch per optimizer step."""
    out: dict[str, Any] = {"strategy": strategy, "processes": total, "processes_per_node": processes.per_node,
                           "nodes": processes.machines, "global_batch": batch_per_step * total}
    if strategy is not None:
        known = load_distributed().strategies[strategy]
        out.update(name=known.name, why=known.why, engine=known.engine)
    if processes.machines > 1:
        out["main_address"] = answers.hardware.main_address if answers.hardware else None
    return out
