"""The answers file (version 1): load, validate, save and round-trip a user's answers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from advisor.errors import InputError
from knowledge.loader import (
    DEPLOY_TARGETS,
    DISTRIBUTED_STRATEGIES,
    EVALUATION_METRICS,
    GOALS,
    PRIORITIES,
    RUNNABLE_METHODS,
    SAFE_LOADER,
)

__all__ = [
    "Answers", "DataAnswers", "EvaluationAnswers", "GpuAnswer", "HardwareAnswers", "ModelAnswers",
    "OVERRIDE_KEYS", "answers_from_dict", "answers_to_dict", "load_answers", "save_answers",
]

FORMATS = ("alpaca", "sharegpt", "messages", "text")
METRICS = ("auto", *EVALUATION_METRICS)
OPTIMIZERS = ("adamw", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "sgd")

#: Keys allowed under `overrides`, with their type and the allowed values or bounds.
OVERRIDE_KEYS: dict[str, tuple[type | tuple[type, ...], Any]] = {
    "method": (str, RUNNABLE_METHODS),
    "learning_rate": (float, (1e-7, 1.0)),
    "epochs": (int, (1, 100)),
    "lora_rank": (int, (1, 1024)),
    "lora_alpha": (int, (1, 4096)),
    "lora_dropout": (float, (0.0, 0.9)),
    "lora_targets": (str, None),
    "batch_size": (int, (1, 1024)),
    "gradient_accumulation": (int, (1, 1024)),
    "max_length": (int, (16, 131072)),
    "num_virtual_tokens": (int, (1, 1024)),
    "gradient_checkpointing": (bool, None),
    "packing": (bool, None),
    "bits": (int, (4, 8, 16, 32)),
    "optimizer": (str, OPTIMIZERS),
    "max_steps": (int, (1, 10_000_000)),
    "save_steps": (int, (1, 10_000_000)),
    "processes_per_node": (int, (1, 256)),
    "distributed": (str, DISTRIBUTED_STRATEGIES),
}


@dataclass
class DataAnswers:
    path: str | None = None
    """The training data file; counts and lengths are measured from it."""
    test_path: str | None = None
    """An optional held-out test file; otherwise a seeded share of `path` is held out."""
    validation_path: str | None = None
    """An optional validation file; otherwise a seeded share of `path` is held out."""
    examples: int | None = None
    """How many examples there are, used when `path` is absent."""
    format: str | None = None
    """alpaca | sharegpt | messages | text; detected when omitted."""


@dataclass
class ModelAnswers:
    name_or_path: str
    """A hub id (Qwen/Qwen2.5-7B-Instruct) or a local folder with config.json."""
    params_b: float | None = None
    """Billions of parameters; read from config.json when it can be."""
    trust_remote_code: bool = False
    """Never on unless the user sets it."""


@dataclass
class EvaluationAnswers:
    metric: str = "auto"
    general_set: str = "builtin"


@dataclass
class GpuAnswer:
    name: str
    memory_gb: float


@dataclass
class HardwareAnswers:
    gpus: list[GpuAnswer] = field(default_factory=list)
    """The GPUs to train on; an empty list means no GPU."""
    ram_gb: float | None = None
    nodes: int = 1
    """Machines with this hardware each, trained on together (multi-node through accelerate)."""
    main_address: str | None = None
    """host[:port] of the first machine (machine rank 0), which the others connect to; several nodes only."""


@dataclass
class Answers:
    goal: str
    model: ModelAnswers
    data: DataAnswers = field(default_factory=DataAnswers)
    evaluation: EvaluationAnswers = field(default_factory=EvaluationAnswers)
    seed: int = 0
    hardware: HardwareAnswers | None = None
    """None: detect the hardware of this machine."""
    deploy: str = "server"
    priority: str = "balanced"
    overrides: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    """The file these answers came from (not saved); relative data paths resolve against its folder."""

    def resolve(self, path: str) -> Path:
        """A path from the answers, made absolute against the answers file's folder."""
        p = Path(os.path.expanduser(path))
        if not p.is_absolute() and self.source is not None:
            p = self.source.parent / p
        return p


class _Checker:
    """Validates the parsed YAML, naming the key (and its line, when known) in every error."""

    def __init__(self, file: str | None, lines: dict[str, int]) -> None:
        self.file, self.lines = file, lines

    def fail(self, key: str, message: str, hint: str | None = None) -> None:
        raise InputError(message, file=self.file, line=self._line(key), key=key, hint=hint)

    def _line(self, key: str) -> int | None:
        """The line of `key`, or of its nearest parent that is in the file (a missing key's section)."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key.rsplit(".", 1)[0] if "." in key else key.rsplit("[", 1)[0] if "[" in key else ""
        return None

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(key, f"must be a mapping with keys {', '.join(allowed)}, got {_kind(value)}")
        for k in value:
            if k not in allowed:
                self.fail(f"{key}.{k}" if key else str(k), "unknown key", f"allowed here: {', '.join(allowed)}")
        return dict(value)

    def string(self, d: dict[str, Any], key: str, path: str, *, required: bool = False,
               choices: tuple[str, ...] | None = None) -> str | None:
        if key not in d or d[key] is None:
            if required:
                hint = f"one of: {', '.join(choices)}" if choices else None
                self.fail(path, "missing", hint)
            return None
        value = d[key]
        if not isinstance(value, str) or not value.strip():
            self.fail(path, f"must be a non-empty string, got {_kind(value)}")
        if choices is not None and value not in choices:
            self.fail(path, f"{value!r} is not allowed", f"one of: {', '.join(choices)}")
        return str(value)

    def number(self, d: dict[str, Any], key: str, path: str, *, integer: bool = False,
               low: float | None = None, high: float | None = None) -> Any:
        if key not in d or d[key] is None:
            return None
        value = d[key]
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            self.fail(path, f"must be {'an integer' if integer else 'a number'}, got {_kind(value)}")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"from {low:g}" + (f" to {high:g}" if high is not None else " up")
            self.fail(path, f"{value} is out of range", f"allowed: {bounds}")
        return value if integer else float(value)

    def boolean(self, d: dict[str, Any], key: str, path: str, default: bool) -> bool:
        if key not in d or d[key] is None:
            return default
        if not isinstance(d[key], bool):
            self.fail(path, f"must be true or false, got {_kind(d[key])}")
        return bool(d[key])


def _kind(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", int: "an integer", float: "a number",
             bool: "true/false", type(None): "nothing"}
    return f"{names.get(type(value), type(value).__name__)} ({value!r})" if not isinstance(value, (dict, list)) \
        else names[type(value)]


def answers_from_dict(raw: Any, *, file: str | None = None, lines: dict[str, int] | None = None,
                      source: Path | None = None) -> Answers:
    """Validate parsed answers; every error names the key and the allowed values."""
    c = _Checker(file, lines or {})
    top_keys = ("version", "goal", "data", "model", "evaluation", "seed", "hardware", "deploy", "priority",
                "overrides")
    if raw is None:
        raise InputError("the answers file is empty", file=file,
                         hint="start from one of the files in examples/")
    c.mapping(raw, "", top_keys)
    if "version" not in raw:
        c.fail("version", "missing", "add `version: 1` at the top")
    if raw["version"] != 1 or isinstance(raw["version"], bool):
        c.fail("version", f"{raw['version']!r} is not a known version", "this tool reads version: 1")
    goal = c.string(raw, "goal", "goal", required=True, choices=GOALS)

    data_raw = c.mapping(raw.get("data") or {}, "data", ("path", "test_path", "validation_path", "examples", "format"))
    data = DataAnswers(
        path=c.string(data_raw, "path", "data.path"),
        test_path=c.string(data_raw, "test_path", "data.test_path"),
        validation_path=c.string(data_raw, "validation_path", "data.validation_path"),
        examples=c.number(data_raw, "examples", "data.examples", integer=True, low=1),
        format=c.string(data_raw, "format", "data.format", choices=FORMATS),
    )
    if data.path is None and data.examples is None:
        c.fail("data", "give data.path (your dataset file) or data.examples (how many examples you have)")

    if "model" not in raw:
        c.fail("model", "missing", "model.name_or_path: a hub id such as Qwen/Qwen2.5-7B-Instruct or a local folder")
    model_raw = c.mapping(raw["model"], "model", ("name_or_path", "params_b", "trust_remote_code"))
    model = ModelAnswers(
        name_or_path=str(c.string(model_raw, "name_or_path", "model.name_or_path", required=True)),
        params_b=c.number(model_raw, "params_b", "model.params_b", low=0.001, high=2000),
        trust_remote_code=c.boolean(model_raw, "trust_remote_code", "model.trust_remote_code", False),
    )

    ev_raw = c.mapping(raw.get("evaluation") or {}, "evaluation", ("metric", "general_set"))
    evaluation = EvaluationAnswers(
        metric=c.string(ev_raw, "metric", "evaluation.metric", choices=METRICS) or "auto",
        general_set=c.string(ev_raw, "general_set", "evaluation.general_set") or "builtin",
    )

    hardware = None
    if raw.get("hardware") is not None:
        hw_raw = c.mapping(raw["hardware"], "hardware", ("gpus", "ram_gb", "nodes", "main_address"))
        gpus = []
        gpu_list = hw_raw.get("gpus") or []
        if not isinstance(gpu_list, list):
            c.fail("hardware.gpus", f"must be a list, got {_kind(gpu_list)}",
                   'for example [{name: "NVIDIA GeForce RTX 4090", memory_gb: 24}], or [] for no GPU')
        for i, g in enumerate(gpu_list):
            path = f"hardware.gpus[{i}]"
            c.mapping(g, path, ("name", "memory_gb"))
            mem = c.number(g, "memory_gb", f"{path}.memory_gb", low=0.5, high=10000)
            if mem is None:
                c.fail(f"{path}.memory_gb", "missing", "the GPU's memory in GB, for example 24")
            gpus.append(GpuAnswer(name=c.string(g, "name", f"{path}.name") or "GPU", memory_gb=mem))
        nodes = c.number(hw_raw, "nodes", "hardware.nodes", integer=True, low=1, high=1024) or 1
        address = c.string(hw_raw, "main_address", "hardware.main_address")
        if address is not None:
            host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
            if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
                c.fail("hardware.main_address", f"{address!r} is not host or host:port",
                       "the address of machine 0 that the others reach, for example 10.0.0.5:29500")
        hardware = HardwareAnswers(gpus=gpus, ram_gb=c.number(hw_raw, "ram_gb", "hardware.ram_gb", low=0.5),
                                   nodes=nodes, main_address=address)

    seed = c.number(raw, "seed", "seed", integer=True, low=0)
    overrides = _check_overrides(c, raw.get("overrides") or {})
    return Answers(
        goal=str(goal), model=model, data=data, evaluation=evaluation, seed=0 if seed is None else seed,
        hardware=hardware,
        deploy=c.string(raw, "deploy", "deploy", choices=DEPLOY_TARGETS) or "server",
        priority=c.string(raw, "priority", "priority", choices=PRIORITIES) or "balanced",
        overrides=overrides, source=source,
    )


def _check_overrides(c: _Checker, raw: Any) -> dict[str, Any]:
    c.mapping(raw, "overrides", tuple(OVERRIDE_KEYS))
    out: dict[str, Any] = {}
    for key, value in raw.items():
        kind, allowed = OVERRIDE_KEYS[key]
        path = f"overrides.{key}"
        if kind is bool:
            out[key] = c.boolean(raw, key, path, False)
        elif kind is str:
            out[key] = c.string(raw, key, path, choices=allowed)
        elif isinstance(allowed, tuple) and len(allowed) > 2:
            if value not in allowed or isinstance(value, bool):
                c.fail(path, f"{value!r} is not allowed", f"one of: {', '.join(map(str, allowed))}")
            out[key] = value
        else:
            low, high = allowed
            out[key] = c.number(raw, key, path, integer=kind is int, low=low, high=high)
    return out


def _key_lines(text: str) -> dict[str, int]:
    """1-based line of every key path (`data.path`, `hardware.gpus[0].name`) in a YAML document."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = f"{path}.{k.value}" if path else str(k.value)
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                key = f"{path}[{i}]"
                lines[key] = item.start_mark.line + 1
                walk(item, key)

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, "")
    return lines


def load_answers(path: str | Path) -> Answers:
    """Read and validate an answers file (safe YAML loading only)."""
    p = Path(path)
    name = str(path)
    if p.is_dir():
        raise InputError("is a folder, not an answers file", file=name, hint="give the path of a .yaml file")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", file=name,
                         hint="check the path; examples/ has answers files to copy") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", file=name, hint="save the file as UTF-8") from None
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror}", file=name) from None
    try:
        raw = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"not valid YAML: {problem}", file=name, line=mark.line + 1 if mark else None,
                         hint="check the indentation and quoting on that line") from None
    return answers_from_dict(raw, file=name, lines=_key_lines(text), source=p.resolve())


def answers_to_dict(answers: Answers) -> dict[str, Any]:
    """The answers as plain data in the file's key order; optional empty values are left out."""
    out: dict[str, Any] = {"version": 1, "goal": answers.goal}
    data = {k: v for k, v in vars(answers.data).items() if v is not None}
    out["data"] = data
    model: dict[str, Any] = {"name_or_path": answers.model.name_or_path}
    if answers.model.params_b is not None:
        model["params_b"] = answers.model.params_b
    model["trust_remote_code"] = answers.model.trust_remote_code
    out["model"] = model
    out["evaluation"] = {"metric": answers.evaluation.metric, "general_set": answers.evaluation.general_set}
    out["seed"] = answers.seed
    if answers.hardware is not None:
        hw: dict[str, Any] = {"gpus": [{"name": g.name, "memory_gb": g.memory_gb} for g in answers.hardware.gpus]}
        if answers.hardware.ram_gb is not None:
            hw["ram_gb"] = answers.hardware.ram_gb
        if answers.hardware.nodes != 1:
            hw["nodes"] = answers.hardware.nodes
        if answers.hardware.main_address:
            hw["main_address"] = answers.hardware.main_address
        out["hardware"] = hw
    out["deploy"] = answers.deploy
    out["priority"] = answers.priority
    out["overrides"] = dict(answers.overrides)
    return out


def save_answers(answers: Answers, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the answers as YAML. An existing file is kept unless `overwrite`; then it is kept as FILE.bak."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise InputError("already exists; not overwritten", file=str(p), hint="choose another name")
    data = answers_to_dict(answers)
    if answers.source is not None and p.resolve().parent != answers.source.parent:
        # relative data paths were relative to the old file's folder: keep them pointing at the same files
        for key in ("path", "test_path", "validation_path"):
            if key in data["data"]:
                data["data"][key] = str(answers.resolve(data["data"][key]))
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text("# finetune-advisor answers file (version 1)\n" + text, encoding="utf-8")
    if p.exists():
        os.replace(p, p.with_name(p.name + ".bak"))
    os.replace(tmp, p)
    return p
