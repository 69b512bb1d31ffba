"""The recommendation: answers + hardware + data profile + model profile -> method, settings, costs, reasons.

`recommend()` is pure and deterministic. `gather_inputs()` does the I/O around it: it reads the data
files, the model's config and (unless the answers state it) the hardware of this machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from advisor.answers import Answers
from advisor.data_probe import DataProfile, find_overlap, probe_file
from advisor.errors import InputError
from advisor.estimate import (
    INPUT_PROMPT_METHODS,
    LORA_METHODS,
    PREFIX_METHODS,
    EstimateConfig,
    MemoryEstimate,
    estimate_memory,
    estimate_time,
)
from advisor.hardware import Hardware, detect_hardware, hardware_from_answers
from advisor.model_profile import ModelProfile, profile_from_params, profile_model
from knowledge.loader import (
    HyperparameterRanges,
    load_decision_table,
    load_distributed,
    load_estimator_constants,
    load_hyperparameters,
    load_methods,
)

__all__ = ["Inputs", "gather_inputs", "recommend", "available_memory_gb"]

#: Tokens a chat template adds around one example (role markers, BOS/EOS), when no tokenizer is used.
TEMPLATE_TOKENS = 16
#: Tokens per example assumed when the answers give only a count of examples, not a file.
ASSUMED_TOKENS_PER_EXAMPLE = 300


@dataclass(frozen=True)
class Inputs:
    answers: Answers
    hardware: Hardware
    model: ModelProfile
    data: DataProfile | None = None
    test_data: DataProfile | None = None


def gather_inputs(answers: Answers, *, detect: bool = True, allow_network: bool = True) -> Inputs:
    """Read what the recommendation needs: data files, the model's config, the hardware."""
    data = test = None
    if answers.data.path:
        data = _probe(answers, answers.data.path, "data.path")
    if answers.data.test_path:
        test = _probe(answers, answers.data.test_path, "data.test_path")
    name = answers.model.name_or_path
    if name.startswith((".", "/", "~")) or answers.resolve(name).exists():
        name = str(answers.resolve(name))  # a local folder: relative to the answers file, like data paths
    try:
        model = profile_model(name, answers.model.params_b, allow_network=allow_network)
    except InputError as exc:
        raise _in_answers(exc, answers, "model.name_or_path") from None
    detected = detect_hardware() if detect else None
    if answers.hardware is not None:
        hardware = hardware_from_answers([(g.name, g.memory_gb) for g in answers.hardware.gpus],
                                         answers.hardware.ram_gb, detected)
    elif detected is not None:
        hardware = detected
    else:
        raise InputError("no hardware given and detection is off", key="hardware",
                         hint="add a hardware section to the answers file")
    return Inputs(answers, hardware, model, data, test)


def _in_answers(exc: InputError, answers: Answers, key: str) -> InputError:
    """The same error, saying which answers key led to it."""
    if exc.key is None and answers.source is not None:
        return InputError(f"{exc}", file=str(answers.source), key=key)
    return exc


def _probe(answers: Answers, path: str, key: str) -> DataProfile:
    try:
        profile = probe_file(answers.resolve(path), layout=answers.data.format)
    except InputError as exc:
        raise _in_answers(exc, answers, key) from None
    if profile.examples == 0:
        first = next((p for p in profile.problems if p.severity == "error"), None)
        detail = f"; line {first.line}: {first.message}" if first else ""
        raise InputError(f"no usable examples in {path}{detail}", file=str(answers.source or path), key=key,
                         hint=f"run: finetune-advisor inspect-data {path}")
    return profile


def available_memory_gb(hardware: Hardware) -> tuple[float, str]:
    """Memory one training process may use, and on what: the smallest GPU, or RAM less a reserve."""
    if hardware.gpus:
        gpu = min(hardware.gpus, key=lambda g: g.memory_gb)
        return gpu.memory_gb, "cuda"
    k = load_estimator_constants()
    ram = hardware.ram_gb or 8.0
    return max(0.5, ram - k.cpu_reserved_gb), "cpu"


# --------------------------------------------------------------------------- hyperparameters

def _epochs(examples: int, ranges: HyperparameterRanges) -> int:
    low, high = ranges.epochs_range
    return max(low, min(high, math.ceil(ranges.target_example_passes / max(1, examples))))


def _lora_rank(goal: str, examples: int, ranges: HyperparameterRanges) -> int:
    rank = ranges.lora_rank_by_goal[goal]
    if examples > ranges.double_rank_above_examples:
        rank *= 2
    elif examples < ranges.halve_rank_below_examples:
        rank //= 2
    low, high = ranges.lora_rank_range
    return max(low, min(high, rank))


def _max_length(tokens_p99: float | None, model: ModelProfile, ranges: HyperparameterRanges) -> int:
    if tokens_p99 is None:
        length = ranges.max_length_default
    else:
        length = next((c for c in ranges.max_length_candidates if c >= tokens_p99), ranges.max_length_candidates[-1])
    if model.max_positions:
        length = min(length, model.max_positions)
    return length


def _hyperparameters(method: str, goal: str, examples: int, max_length: int) -> dict[str, Any]:
    ranges = load_hyperparameters()
    card = load_methods()[method]
    hp: dict[str, Any] = {"learning_rate": card.defaults["learning_rate"], "epochs": _epochs(examples, ranges)}
    if method in LORA_METHODS:
        rank = _lora_rank(goal, examples, ranges)
        hp.update(lora_rank=rank, lora_alpha=int(rank * ranges.alpha_per_rank),
                  lora_dropout=card.defaults.get("lora_dropout", 0.0),
                  lora_targets=card.defaults.get("lora_targets", "all-linear"))
    if method in PREFIX_METHODS or method in INPUT_PROMPT_METHODS:
        hp["num_virtual_tokens"] = card.defaults["num_virtual_tokens"]
        if "encoder_hidden_size" in card.defaults:
            hp["encoder_hidden_size"] = card.defaults["encoder_hidden_size"]
    if method == "freeze":
        hp["freeze_trainable_layers"] = card.defaults["freeze_trainable_layers"]
    hp["max_length"] = max_length
    hp["packing"] = card.packable  # padding-free batches: 1.44x the tokens/s of padded ones (bench/)
    hp["optimizer"] = "adamw"
    hp["bits"] = card.defaults.get("bits")
    return hp


def _ranges_for(method: str) -> dict[str, list[float]]:
    """The advised range beside each hyperparameter (shown by the TUI and in the JSON)."""
    r = load_hyperparameters()
    out: dict[str, list[float]] = {"learning_rate": list(r.learning_rate[method]), "epochs": list(r.epochs_range),
                                   "gradient_accumulation": list(r.gradient_accumulation_range)}
    if method in LORA_METHODS:
        out["lora_rank"] = list(r.lora_rank_range)
        out["lora_alpha"] = [r.lora_rank_range[0], r.lora_rank_range[1] * 2]
    if method in PREFIX_METHODS or method in INPUT_PROMPT_METHODS:
        out["num_virtual_tokens"] = list(r.num_virtual_tokens_range)
    return out


@dataclass(frozen=True)
class Scale:
    """How many training processes, on how many machines, with which strategy (None: one process)."""
    processes: int = 1
    machines: int = 1
    strategy: str | None = None


ONE_PROCESS = Scale()


def _config(method: str, hp: dict[str, Any], device: str, batch: int, gc: bool, seq: int,
            scale: Scale = ONE_PROCESS) -> EstimateConfig:
    return EstimateConfig(processes=scale.processes, machines=scale.machines, strategy=scale.strategy,
        method=method, batch_size=batch, seq_len=seq, gradient_checkpointing=gc, bits=hp.get("bits"),
        optimizer=hp.get("optimizer", "adamw"), lora_rank=hp.get("lora_rank", 16),
        lora_targets=hp.get("lora_targets", "all-linear"), lora_dropout=hp.get("lora_dropout", 0.0),
        num_virtual_tokens=hp.get("num_virtual_tokens", 20), encoder_hidden_size=hp.get("encoder_hidden_size"),
        freeze_trainable_layers=hp.get("freeze_trainable_layers", 2), device=device)


@dataclass
class _Fit:
    config: EstimateConfig
    memory: MemoryEstimate
    fits: bool
    shortened_from: int | None = None


def _fit(method: str, hp: dict[str, Any], model: ModelProfile, device: str, usable_gb: float,
         fixed: dict[str, Any], min_length: int, scale: Scale = ONE_PROCESS) -> _Fit:
    """The fastest settings that fit: largest batch without checkpointing, then with, then shorter sequences."""
    ranges = load_hyperparameters()
    batches = [fixed["batch_size"]] if "batch_size" in fixed else ranges.batch_size_candidates
    gc_allowed = load_methods()[method].incompatible_with("gradient_checkpointing") is None
    gcs = [fixed["gradient_checkpointing"]] if "gradient_checkpointing" in fixed else ([False, True] if gc_allowed
                                                                                        else [False])
    seq = hp["max_length"]
    lengths = [seq]
    if "max_length" not in fixed:
        while lengths[-1] // 2 >= max(128, min_length):
            lengths.append(lengths[-1] // 2)
    last = None
    for length in lengths:
        for gc in gcs:
            for batch in batches:
                cfg = _config(method, hp, device, batch, gc, length, scale)
                mem = estimate_memory(model, cfg)
                last = _Fit(cfg, mem, mem.estimated_gb <= usable_gb, seq if length != seq else None)
                if last.fits:
                    return last
    assert last is not None
    # nothing fits: report the smallest configuration at the planned length
    cfg = _config(method, hp, device, batches[-1], gcs[-1], seq, scale)
    return _Fit(cfg, estimate_memory(model, cfg), False)


def _scales(method: str, processes: int, machines: int, chosen: str | None) -> list[Scale]:
    """The strategies to try for a method, fastest first: DDP, then full sharding when DDP does not fit."""
    if processes == 1:
        return [ONE_PROCESS]
    if chosen:
        return [Scale(processes, machines, chosen)]
    shardable = method not in load_distributed().not_shardable
    return [Scale(processes, machines, "ddp")] + ([Scale(processes, machines, "fsdp")] if shardable else [])


def _gpus_to_fit(method: str, hp: dict[str, Any], model: ModelProfile, usable_gb: float, min_length: int,
                 machines: int) -> int | None:
    """The fewest GPUs (2, 4 or 8 a machine) that train `method` with full sharding, or None."""
    if method in load_distributed().not_shardable:
        return None
    for n in (2, 4, 8):
        scale = Scale(n * machines, machines, "fsdp")
        if _fit(method, hp, model, "cuda", usable_gb, {}, min_length, scale).fits:
            return n
    return None


def _largest_fitting_params_b(model: ModelProfile, hp: dict[str, Any], device: str, usable_gb: float) -> float | None:
    """The largest model size (B parameters) that QLoRA fits with batch 1 and checkpointing, or None."""
    def fits(params_b: float) -> bool:
        shape = profile_from_params(params_b, model.name)
        cfg = _config("qlora", {**hp, "bits": 4}, device, 1, True, hp["max_length"])
        return estimate_memory(shape, cfg).estimated_gb <= usable_gb

    low, high = 0.05, model.params_b
    if not fits(low):
        return None
    for _ in range(20):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if fits(mid) else (low, mid)
    return round(low, 1) if low >= 1 else round(low, 2)


# --------------------------------------------------------------------------- the recommendation

def recommend(inputs: Inputs) -> dict[str, Any]:
    """The recommendation JSON of DESIGN.md. Pure: the same inputs give the same output."""
    answers, model = inputs.answers, inputs.model
    table, ranges, methods = load_decision_table(), load_hyperparameters(), load_methods()
    constants = load_estimator_constants()
    overrides = dict(answers.overrides)
    reasons: list[str] = []
    warnings: list[str] = []
    rules: list[str] = []
    rejected: dict[str, str] = {}

    # ---- data facts
    data = inputs.data
    if data is not None:
        examples = data.examples
        chars = data.total_chars
        assert chars is not None
        cpt = constants.chars_per_token
        tokens_mean = chars.mean / cpt + TEMPLATE_TOKENS
        tokens_p95: float | None = chars.p95 / cpt + TEMPLATE_TOKENS
        tokens_p99: float | None = chars.p99 / cpt + TEMPLATE_TOKENS
        data_source = "measured"
        if data.problem_counts:
            counted = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(data.problem_counts.items()))
            warnings.append(f"{answers.data.path}: {counted} (see: finetune-advisor inspect-data {answers.data.path})")
    else:
        examples = int(answers.data.examples or 0)
        tokens_mean, tokens_p95, tokens_p99 = float(ASSUMED_TOKENS_PER_EXAMPLE), None, None
        data_source = "stated"
    held_out = ranges.split_validation + (0 if answers.data.test_path else ranges.split_test)
    train_examples = max(1, int(examples * (1 - held_out)))
    if inputs.test_data is not None and data is not None:
        for problem in find_overlap(data, inputs.test_data):
            warnings.append(problem.message)

    facts: dict[str, Any] = {"goal": answers.goal, "priority": answers.priority, "deploy": answers.deploy,
                             "examples": examples}

    # ---- method by the decision table: goal, then priority, then deploy target
    method = ""
    for stage in ("goal", "priority", "deploy"):
        rule = next((r for r in table.stage(stage) if r.matches(facts)), None)
        if rule is None or rule.method is None:
            continue
        if method and rule.method != method:
            rejected[method] = f"replaced by rule {rule.id}: {rule.reason.split(':')[0]}"
        method = rule.method
        rules.append(rule.id)
        reasons.append(rule.reason)
    advice = table.goals[answers.goal]
    low, high = advice.advised_examples
    if examples < low:
        warnings.append(advice.too_few.format(n=examples, low=low, high=high))
    elif examples > high:
        warnings.append(advice.too_many.format(n=examples, low=low, high=high))
    else:
        reasons.append(f"{examples} examples is within the advised {low}-{high} for {answers.goal}")

    user_method = overrides.pop("method", None)
    if user_method and user_method != method:
        rejected[method] = f"recommended by the table, but you chose {user_method} (overrides.method)"
        reasons.append(f"{user_method}: chosen by you (overrides.method); the table recommends {method}")
        method = user_method
    warnings.extend(_method_warnings(method, answers, model, examples))

    # ---- processes: GPUs on this machine (or CPU processes) times machines
    machines = answers.hardware.nodes if answers.hardware is not None else 1
    gpus_here = len(inputs.hardware.gpus)
    per_node = overrides.pop("processes_per_node", None) or max(1, gpus_here)
    chosen_strategy = overrides.pop("distributed", None)
    if gpus_here and per_node > gpus_here:
        raise InputError(f"{per_node} processes a machine, but {gpus_here} GPU(s) are listed",
                         file=str(answers.source) if answers.source else None, key="overrides.processes_per_node",
                         hint="one process per GPU: remove it, or list every GPU under hardware.gpus")
    processes = per_node * machines
    if chosen_strategy and processes == 1:
        warnings.append(f"overrides.distributed {chosen_strategy} has no effect with one process: list several GPUs "
                        "(hardware.gpus) or machines (hardware.nodes), or set overrides.processes_per_node")
        chosen_strategy = None
    if machines > 1 and not (answers.hardware and answers.hardware.main_address):
        warnings.append(f"{machines} machines but no hardware.main_address: the launch commands say MAIN_NODE_ADDRESS; "
                        "set it to machine 0's address (host:port) that the others can reach")
    if processes > 1:
        reasons.append(f"{processes} training processes ({per_node} a machine x {machines} machine(s)) through "
                       "accelerate launch")

    # ---- hyperparameters, then memory fit with fallback
    available, device = available_memory_gb(inputs.hardware)
    if device == "cpu" and per_node > 1:  # the processes of a machine share its RAM
        available = round(available / per_node, 2)
    # the plan must fit at the estimate's measured worst: X x (1 + error) <= available
    error, error_basis = constants.estimate_error[device if device in constants.estimate_error else "cuda"]
    usable = round(available / (1 + error), 2)
    max_length = _max_length(tokens_p99, model, ranges)
    fit_keys = ("batch_size", "gradient_checkpointing", "max_length")
    fixed: dict[str, Any] = {k: overrides[k] for k in fit_keys if k in overrides}
    min_length = int(tokens_p95) if tokens_p95 else 256

    def plan(m: str) -> tuple[dict[str, Any], _Fit]:
        hp = _hyperparameters(m, answers.goal, examples, max_length)
        for key, value in overrides.items():
            if key in hp or key in ("batch_size", "gradient_accumulation", "gradient_checkpointing", "bits",
                                    "optimizer", "packing"):
                hp[key] = value
        if fixed.get("gradient_checkpointing") and methods[m].incompatible_with("gradient_checkpointing"):
            why = methods[m].incompatible_with("gradient_checkpointing")
            raise InputError(f"{m} cannot be trained with gradient checkpointing: {why.why if why else ''}",
                             file=str(answers.source) if answers.source else None,
                             key="overrides.gradient_checkpointing", hint="remove it, or choose lora/qlora")
        try:
            # every strategy at the planned length first: sharding beats truncating the examples
            whole = fixed if "max_length" in fixed else {**fixed, "max_length": hp["max_length"]}
            fit = None
            for allowed in (whole, fixed):
                for scale in _scales(m, processes, machines, chosen_strategy):
                    fit = _fit(m, hp, model, device, usable, allowed, min_length, scale)
                    if fit.fits:
                        return hp, fit
            assert fit is not None
            return hp, fit
        except InputError as exc:  # a hand-set value the method cannot use: name it as the user wrote it
            key = f"overrides.{exc.key}" if exc.key else "overrides"
            raise InputError(exc.message, file=str(answers.source) if answers.source else None, key=key,
                             hint=exc.hint) from None

    hp, fit = plan(method)
    first_method, first_hp = method, hp
    while not fit.fits and not user_method:
        nxt = table.fallback.get(method)
        if nxt is None:
            break
        h1 = table.rule("H1")
        reason = h1.reason.format(from_method=method, to_method=nxt, needed_gb=fit.memory.estimated_gb,
                                  available_gb=round(available, 1))
        rejected[method] = f"needs {fit.memory.estimated_gb} GB with the smallest batch, {usable} GB usable"
        rules.append(h1.id)
        reasons.append(reason)
        method = nxt
        hp, fit = plan(method)
    if not fit.fits:
        suggestion = _largest_fitting_params_b(model, hp, device, usable)
        if suggestion is not None and not user_method:
            rules.append(table.smaller_model_rule_id)
            warnings.append(table.smaller_model_reason.format(needed_gb=fit.memory.estimated_gb,
                                                              available_gb=round(available, 1),
                                                              fit_params_b=suggestion))
        elif user_method:
            warnings.append(f"{method} needs {fit.memory.estimated_gb} GB even with batch 1, {usable} GB usable: "
                            "it will run out of memory; remove overrides.method to let the table fall back")
        else:
            warnings.append(f"nothing fits in {available:g} GB: even a 0.05B model would not; "
                            "train on a machine with more memory")
    if device == "cuda" and (method != first_method or not fit.fits):  # one GPU (or these) is not enough
        n = _gpus_to_fit(first_method, first_hp, model, usable, min_length, machines)
        if n is not None and n * machines > processes:
            warnings.append(f"scale out: {first_method} fits with FSDP (weights, gradients and optimizer states "
                            f"sharded) over {n} GPUs{f' on each of {machines} machines' if machines > 1 else ''} "
                            f"like these; list them under hardware.gpus and train with accelerate "
                            "(README: Several GPUs and machines)")
    if fit.shortened_from:
        warnings.append(f"max_length shortened from {fit.shortened_from} to {fit.config.seq_len} tokens to fit in "
                        "memory: longer examples will be truncated")
    elif tokens_p95 and fit.config.seq_len < tokens_p95:
        warnings.append(f"more than 5% of the examples are longer than max_length {fit.config.seq_len} "
                        "(estimated at 4 characters per token): they will be truncated")

    batch = fit.config.batch_size
    ga_low, ga_high = ranges.gradient_accumulation_range
    accumulation = overrides.get("gradient_accumulation",
                                 max(ga_low, min(ga_high, ranges.target_effective_batch // (batch * processes))))
    hp.update(batch_size=batch, gradient_accumulation=accumulation, max_length=fit.config.seq_len,
              gradient_checkpointing=fit.config.gradient_checkpointing, bits=fit.config.bits or
              (4 if method == "qlora" else (16 if device == "cuda" else 32)))
    warnings.extend(_override_warnings(method, overrides, hp, tokens_p99))

    # ---- time
    tokens_per_example = min(fit.config.seq_len, tokens_mean if batch == 1 or tokens_p95 is None
                             else (tokens_mean + tokens_p95) / 2)
    gpu_name = min(inputs.hardware.gpus, key=lambda g: g.memory_gb).name if inputs.hardware.gpus else None
    time = estimate_time(model, fit.config, tokens=int(train_examples * hp["epochs"] * tokens_per_example),
                         device_name=gpu_name, cpu_cores=inputs.hardware.cpu_cores,
                         cpu_vector=inputs.hardware.cpu_vector, cpu_ghz=inputs.hardware.cpu_ghz)

    if device == "cpu" and time.estimated_hours > 24:
        warnings.append(f"training on the CPU would take about {time.estimated_hours:.0f} hours: use a machine with "
                        "a GPU, or a smaller model")

    # ---- alternatives
    alternatives = _alternatives(method, rejected, answers, model, device, usable, min_length, examples, max_length,
                                 rules, reasons)

    uncertainty = fit.memory.uncertainty_gb
    memory = {
        "estimated_gb": fit.memory.estimated_gb, "uncertainty_gb": uncertainty, "relative_error": error,
        "error_basis": error_basis, "available_gb": round(available, 2), "usable_gb": usable,
        "fits": fit.fits, "device": device, "breakdown": fit.memory.breakdown, "detail": fit.memory.detail,
        "summary": f"needs {fit.memory.estimated_gb:g} GB ± {uncertainty:g} of {available:g} GB "
                   f"(the estimate's error, ± {error:.0%}, is kept free)",
        "assumptions": fit.memory.assumptions,
    }
    card = methods[method]
    return {
        "method": method,
        "method_name": card.name,
        "alternatives": alternatives,
        "hyperparameters": hp,
        "advised_ranges": _ranges_for(method),
        "memory": memory,
        "time": {"estimated_hours": time.estimated_hours, "basis": time.basis, "tokens": time.tokens},
        "reasons": reasons,
        "warnings": warnings,
        "rules_applied": rules,
        "trainable_params": fit.memory.trainable_params,
        "trainable_percent": round(100 * fit.memory.trainable_params / model.total_params, 4),
        "data": {"examples": examples, "train_examples": train_examples, "source": data_source,
                 "tokens_per_example": round(tokens_mean, 1),
                 "tokens_p99": round(tokens_p99, 1) if tokens_p99 else None,
                 "layout": data.layout if data else answers.data.format},
        "model": {"name": model.name, "params_b": round(model.params_b, 3), "source": model.source,
                  "model_type": model.model_type, "notes": model.notes},
        "hardware": {"device": device, "gpus": [g.name for g in inputs.hardware.gpus],
                     "source": inputs.hardware.source},
        "distributed": _distributed_summary(fit.config, per_node, machines, answers, batch * accumulation),
        "serving": {"vllm_adapter": card.serving.vllm_adapter, "mergeable": card.serving.mergeable,
                    "note": card.serving.merge_note},
    }


def _distributed_summary(cfg: EstimateConfig, per_node: int, machines: int, answers: Answers,
                         batch_per_step: int) -> dict[str, Any]:
    """How training is spread: strategy, processes, machines, and the global batch per optimizer step."""
    out: dict[str, Any] = {"strategy": cfg.strategy, "processes": cfg.processes, "processes_per_node": per_node,
                           "nodes": machines, "global_batch": batch_per_step * cfg.processes}
    if cfg.strategy is not None:
        strategy = load_distributed().strategies[cfg.strategy]
        out.update(name=strategy.name, why=strategy.why, engine=strategy.engine)
    if machines > 1:
        out["main_address"] = answers.hardware.main_address if answers.hardware else None
    return out


def _method_warnings(method: str, answers: Answers, model: ModelProfile, examples: int) -> list[str]:
    card = load_methods()[method]
    out = []
    if answers.deploy == "edge" and not card.serving.mergeable:
        out.append(f"{method} cannot be merged into the weights, but edge deployment needs one merged model: "
                   "prefer qlora")
    if method == "prompt_tuning" and model.params_b < 10:
        out.append(f"prompt tuning works well only on large models; this one has {model.params_b:.1f}B parameters")
    if method in PREFIX_METHODS + INPUT_PROMPT_METHODS and answers.goal in ("knowledge", "reasoning"):
        out.append(f"{method} trains prompts, not weights: it holds little new knowledge; lora is the table's "
                   f"choice for {answers.goal}")
    if method == "full" and examples < 10000:
        out.append(f"full fine-tuning on {examples} examples risks overfitting and forgetting; "
                   "an adapter (lora) is safer below 10000 examples")
    return out


def _override_warnings(method: str, overrides: dict[str, Any], hp: dict[str, Any],
                       tokens_p99: float | None) -> list[str]:
    """Warnings for hand-set values outside the advised ranges."""
    out = []
    adv = _ranges_for(method)
    for key in ("learning_rate", "epochs", "lora_rank", "num_virtual_tokens", "gradient_accumulation"):
        if key in overrides and key in adv:
            low, high = adv[key]
            value = overrides[key]
            if value > high:
                risk = {"learning_rate": "training may diverge or forget general ability",
                        "epochs": "the model may memorise the training set"}.get(key, "more cost for little gain")
                out.append(f"overrides.{key} = {value:g} is above the advised {low:g}-{high:g} for {method}: {risk}")
            elif value < low:
                risk = {"learning_rate": "training may barely move the model",
                        "epochs": "the model may not learn the task"}.get(key, "the model may underfit")
                out.append(f"overrides.{key} = {value:g} is below the advised {low:g}-{high:g} for {method}: {risk}")
    if "lora_alpha" in overrides and "lora_rank" in hp and not hp["lora_rank"] <= overrides["lora_alpha"] <= \
            2 * hp["lora_rank"]:
        out.append(f"overrides.lora_alpha = {overrides['lora_alpha']} is outside 1-2x the rank "
                   f"({hp['lora_rank']}): the update scale alpha/rank changes accordingly")
    if "max_length" in overrides and tokens_p99 and overrides["max_length"] < tokens_p99:
        out.append(f"overrides.max_length = {overrides['max_length']} is shorter than 99% of the examples "
                   f"(about {tokens_p99:.0f} tokens): the longer ones will be truncated")
    return out


def _alternatives(method: str, rejected: dict[str, str], answers: Answers, model: ModelProfile, device: str,
                  usable: float, min_length: int, examples: int, max_length: int, rules: list[str],
                  reasons: list[str]) -> list[dict[str, Any]]:
    table = load_decision_table()

    def fit(alt: str) -> _Fit:  # each alternative with its own default settings, as the user would start it
        return _fit(alt, _hyperparameters(alt, answers.goal, examples, max_length), model, device, usable, {},
                    min_length)

    out: list[dict[str, Any]] = []
    candidates: list[tuple[str, str]] = [(m, why) for m, why in rejected.items() if m and m != method]
    full_rule = table.stage("alternatives")
    for rule in full_rule:
        alt = rule.method
        if alt is None or alt == method:
            continue
        alt_fit = fit(alt)
        if rule.matches({"examples": examples, "full_fits": alt_fit.fits, "goal": answers.goal,
                         "priority": answers.priority, "deploy": answers.deploy}):
            rules.append(rule.id)
            reasons.append(rule.reason.format(n=examples))
            candidates.append((alt, "offered for large data: the most capacity, but more memory and time"))
    candidates += [(m, why) for m, why in table.goal_alternatives[answers.goal] if m != method]
    seen = set()
    for alt, why in candidates:
        if alt in seen:
            continue
        seen.add(alt)
        alt_fit = fit(alt)
        need = f"needs {alt_fit.memory.estimated_gb:g} GB"
        if not alt_fit.fits:
            why = f"{need} even with batch 1, {usable:g} GB usable" if alt in rejected \
                else f"{why}; {need}, does not fit"
        out.append({"method": alt, "why_not": why, "estimated_gb": alt_fit.memory.estimated_gb,
                    "fits": alt_fit.fits})
    return out
