"""The answers file (version 1): load, validate, save and round-trip a user's answers."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from knowledge import (
    DEPLOY_TARGETS,
    DISTRIBUTED_STRATEGIES,
    EVALUATION_METRICS,
    GOALS,
    LAYOUTS,
    OPTIMIZERS,
    PRIORITIES,
    RUNNABLE_METHODS,
)
from knowledge.errors import InputError
from knowledge.reader import MAX_YAML_BYTES, Reader, describe, key_lines, parse_yaml
from runner.builtin_models import builtin_folder, builtin_model

__all__ = [
    "Answers", "DataAnswers", "EvaluationAnswers", "GpuAnswer", "HardwareAnswers", "ModelAnswers",
    "OVERRIDE_KEYS", "answers_from_dict", "answers_to_dict", "load_answers", "save_answers",
]

METRICS = ("auto", *EVALUATION_METRICS)
#: What the result is for (answers `use`), checked against the base model's licence.
USES = ("commercial", "research")

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
    "precision": (str, ("bf16", "fp16", "fp32")),
    "bits": (int, (4, 8, 16, 32)),
    "optimizer": (str, tuple(OPTIMIZERS)),
    "max_steps": (int, (1, 10_000_000)),
    "save_steps": (int, (1, 10_000_000)),
    "processes_per_node": (int, (1, 256)),
    "distributed": (str, DISTRIBUTED_STRATEGIES),
    "tensorboard": (bool, None),
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
    group_by: str | None = None
    """Knowledge: a field of each example that names its fact (examples with the same value ask the same fact in
    other words); by default examples with the same answer are one fact."""


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
    speed: bool = True
    """False: generation speed is not timed (quicker; the scorecard's speed dimension is then not measured)."""


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
    use: str | None = None
    """commercial | research: what the result is for; the base model's licence is checked against it."""
    overrides: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    """The file these answers came from (not saved); relative data paths resolve against its folder."""

    def resolve(self, path: str) -> Path:
        """A path from the answers, made absolute against the answers file's folder."""
        p = Path(os.path.expanduser(path))
        if not p.is_absolute() and self.source is not None:
            p = self.source.parent / p
        return p

    def model_location(self) -> str:
        """The model as it is loaded: a built-in model's folder in the cache, a local folder made absolute
        against the answers file, else the hub id."""
        name = self.model.name_or_path
        builtin = builtin_model(name)
        if builtin is not None:
            return str(builtin_folder(builtin))
        local = self.resolve(name)
        return str(local) if name.startswith((".", "/", "~")) or local.exists() else name


def answers_from_dict(raw: Any, *, file: str | None = None, lines: dict[str, int] | None = None,
                      source: Path | None = None) -> Answers:
    """Validate parsed answers; every error names the key (and its line) and the allowed values."""
    top_keys = ("version", "goal", "data", "model", "evaluation", "seed", "hardware", "deploy", "priority", "use",
                "overrides")
    if raw is None:
        raise InputError("the answers file is empty", file=file,
                         hint="start from one of the files in examples/")
    c = Reader(raw, file=file, lines=lines, allowed=top_keys)
    if "version" not in raw:
        c.fail("missing", "version", "add `version: 1` at the top")
    if raw["version"] != 1 or isinstance(raw["version"], bool):
        c.fail(f"{raw['version']!r} is not a known version", "version", "this tool reads version: 1")
    goal = c.string("goal", required=True, choices=GOALS)

    d = c.sub("data", ("path", "test_path", "validation_path", "examples", "format", "group_by"), optional=True)
    data = DataAnswers(
        path=d.string("path"), test_path=d.string("test_path"), validation_path=d.string("validation_path"),
        examples=d.number("examples", integer=True, low=1), format=d.string("format", choices=LAYOUTS),
        group_by=d.string("group_by"),
    )
    if data.path is None and data.examples is None:
        c.fail("give data.path (your dataset file) or data.examples (how many examples you have)", "data")

    if "model" not in raw:
        c.fail("missing", "model", "model.name_or_path: a hub id such as Qwen/Qwen2.5-7B-Instruct or a local folder")
    m = c.sub("model", ("name_or_path", "params_b", "trust_remote_code"), optional=True)
    model = ModelAnswers(
        name_or_path=str(m.string("name_or_path", required=True)),
        params_b=m.number("params_b", low=0.001, high=2000),
        trust_remote_code=m.boolean("trust_remote_code", False),
    )

    e = c.sub("evaluation", ("metric", "general_set", "speed"), optional=True)
    speed = e.data.get("speed", True)
    if not isinstance(speed, bool):
        e.fail(f"must be true or false, got {describe(speed)}", "speed")
    evaluation = EvaluationAnswers(metric=e.string("metric", choices=METRICS) or "auto",
                                   general_set=e.string("general_set") or "builtin", speed=speed)

    hardware = None
    if raw.get("hardware") is not None:
        h = c.sub("hardware", ("gpus", "ram_gb", "nodes", "main_address"))
        gpus = []
        gpu_list = h.data.get("gpus") or []
        if not isinstance(gpu_list, list):
            h.fail(f"must be a list, got {describe(gpu_list)}", "gpus",
                   'for example [{name: "NVIDIA GeForce RTX 4090", memory_gb: 24}], or [] for no GPU')
        for i, item in enumerate(gpu_list):
            g = h.item("gpus", i, item, ("name", "memory_gb"))
            mem = g.number("memory_gb", low=0.5, high=10000)
            if mem is None:
                g.fail("missing", "memory_gb", "the GPU's memory in GB, for example 24")
            gpus.append(GpuAnswer(name=g.string("name") or "GPU", memory_gb=mem))
        nodes = h.number("nodes", integer=True, low=1, high=1024) or 1
        address = h.string("main_address")
        if address is not None:
            host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
            if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
                h.fail(f"{address!r} is not host or host:port", "main_address",
                       "the address of machine 0 that the others reach, for example 10.0.0.5:29500")
        hardware = HardwareAnswers(gpus=gpus, ram_gb=h.number("ram_gb", low=0.5), nodes=nodes, main_address=address)

    seed = c.number("seed", integer=True, low=0, high=2**32 - 1)  # numpy's and the Trainer's seed range
    overrides = _check_overrides(c.sub("overrides", tuple(OVERRIDE_KEYS), optional=True))
    return Answers(
        goal=str(goal), model=model, data=data, evaluation=evaluation, seed=0 if seed is None else seed,
        hardware=hardware, deploy=c.string("deploy", choices=DEPLOY_TARGETS) or "server",
        priority=c.string("priority", choices=PRIORITIES) or "balanced", use=c.string("use", choices=USES),
        overrides=overrides, source=source,
    )


def _check_overrides(o: Reader) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in o.data.items():
        kind, allowed = OVERRIDE_KEYS[key]
        if kind is bool:
            out[key] = o.boolean(key, False)
        elif kind is str:
            out[key] = o.string(key, choices=allowed)
        elif isinstance(allowed, tuple) and len(allowed) > 2:
            if value not in allowed or isinstance(value, bool):
                o.fail(f"{value!r} is not allowed", key, f"one of: {', '.join(map(str, allowed))}")
            out[key] = value
        else:
            low, high = allowed
            out[key] = o.number(key, integer=kind is int, low=low, high=high)
    return out


def load_answers(path: str | Path, *, default_model: str | None = None) -> Answers:
    """Read and validate an answers file (safe YAML loading only). `default_model` stands in when the file names
    no model (for `models`, which tries each catalog model in its place)."""
    p = Path(path)
    name = str(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError("no such file", file=name,
                         hint="check the path; examples/ has answers files to copy") from None
    except OSError as exc:  # a symlink loop, a name too long, no permission on a folder above
        raise InputError(f"cannot be opened: {exc.strerror}", file=name) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError("is a folder, not an answers file", file=name, hint="give the path of a .yaml file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError("is not a regular file (a pipe or a device)", file=name,
                         hint="save the answers to a .yaml file and give its path")
    if st.st_size > MAX_YAML_BYTES:
        raise InputError(f"is {st.st_size:,} bytes; an answers file is at most {MAX_YAML_BYTES:,}", file=name,
                         hint="is this the right file? answers files are a few hundred bytes")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", file=name, hint="save the file as UTF-8") from None
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror}", file=name) from None
    raw = parse_yaml(text, file=name)
    if default_model is not None and isinstance(raw, dict) and raw.get("model") is None:
        raw["model"] = {"name_or_path": default_model}
    return answers_from_dict(raw, file=name, lines=key_lines(text), source=p.resolve())


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
    if not answers.evaluation.speed:
        out["evaluation"]["speed"] = False
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
    if answers.use is not None:
        out["use"] = answers.use
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
