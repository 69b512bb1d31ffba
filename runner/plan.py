"""The plan: everything the training and evaluation processes need, resolved by the advisor and written to
plan.json before anything runs. The runner reads the run directory only, never the answers file.

Plan is the runner's input contract, so it lives here; advisor/plan.py makes one from the answers and the
recommendation.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge.errors import InputError
from knowledge.methods import MethodCard, method_card

__all__ = ["Plan", "PlanData", "PlanEvaluation", "PlanModel", "PlanTraining", "read_plan", "step_schedule"]

PLAN_VERSION = 1


@dataclass
class PlanModel:
    name_or_path: str
    """A hub id, or an absolute local folder."""
    trust_remote_code: bool = False
    modules: dict[str, str] | None = None
    """The block's linear modules by name -> shape kind (q, k, v, o, gate, up, down, ...); None: unknown family."""
    params_b: float | None = None
    """Billions of parameters, as profiled for the recommendation."""


@dataclass
class PlanData:
    path: str
    """The training file (absolute), or a hub dataset id."""
    validation_path: str | None = None
    test_path: str | None = None
    layout: str | None = None
    """alpaca | sharegpt | messages | text; None: detected from the first record."""
    group_by: str | None = None
    """Knowledge: the field that names which examples ask the same fact; None: examples that share an answer."""
    split: dict[str, float] = field(default_factory=lambda: {"validation": 0.1, "test": 0.1})
    """Shares held out of `path` for validation and test when no file is given for them."""


@dataclass
class PlanTraining:
    """Trainer settings that the recommendation does not choose (README: Training)."""
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    save_total_limit: int = 2
    max_steps: int | None = None
    save_steps: int = 500
    logging_steps: int = 10
    eval_steps: int = 100
    tensorboard: bool = True
    """Training logs in TensorBoard format (run/tensorboard/) when the package is installed."""


def step_schedule(train_examples: int, batch: int, accumulation: int, processes: int, epochs: int,
                  max_steps: int | None = None) -> tuple[int, int, int]:
    """(optimizer steps in all, steps between validation evaluations, validation evaluations): the Trainer's
    schedule for a run, as plan.json sets it (five evaluations over the run) and the time estimate counts it."""
    per_epoch = max(1, -(-train_examples // (batch * accumulation * processes)))
    total = max_steps or per_epoch * max(1, int(epochs))
    every = max(1, total // 5)
    return total, every, total // every


@dataclass
class PlanEvaluation:
    metric: str = "auto"
    """auto (the goal's metrics) or one metric id of knowledge/ids.py, then the goal's others."""
    general_set: str = "builtin"
    """builtin, or the absolute path of the user's general-ability set."""
    speed: bool = True
    """Whether evaluation times generation speed (the scorecard's speed dimension)."""


@dataclass
class Plan:
    goal: str
    method: str
    method_family: str
    model: PlanModel
    data: PlanData
    hyperparameters: dict[str, Any]
    """The recommended settings (learning_rate, epochs, batch_size, lora_rank, ...): keys vary by method."""
    seed: int = 0
    training: PlanTraining = field(default_factory=PlanTraining)
    evaluation: PlanEvaluation = field(default_factory=PlanEvaluation)
    incompatible_with: list[str] = field(default_factory=list)
    distributed: dict[str, Any] = field(default_factory=lambda: {"strategy": None, "processes": 1, "nodes": 1})
    """strategy (None: one process), processes, processes_per_node, nodes, global_batch, engine, main_address."""
    available_gb: float | None = None
    """Memory one training process may use, as the recommendation planned it (the scorecard's resources)."""
    licence_warning: str | None = None
    """Why the base model's licence does not allow the answers' stated use (the report repeats it), or None."""
    version: int = PLAN_VERSION

    @property
    def card(self) -> MethodCard:
        return method_card(self.method)

    @property
    def artifact(self) -> str:
        """The folder the trained result goes to: model (whole-model methods) or adapter."""
        return "model" if self.card.full_model else "adapter"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(data: Any, *, file: str = "plan.json") -> Plan:
        """A plan from its JSON; InputError naming the file and key when it is not one."""
        plan: Plan = _build(Plan, data, file, "")
        return plan


def _build(cls: Any, data: Any, file: str, path: str) -> Any:
    if not isinstance(data, dict):
        raise InputError(f"must be an object, got {type(data).__name__}", file=file, key=path or None,
                         hint="the run directory is damaged: start a new run")
    kinds = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in kinds]
    if unknown:
        raise InputError(f"unknown key {unknown[0]!r}", file=file, key=path or None,
                         hint="this plan was written by another version of finetune-advisor")
    values: dict[str, Any] = {}
    nested = {"model": PlanModel, "data": PlanData, "training": PlanTraining, "evaluation": PlanEvaluation}
    for name, f in kinds.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InputError("missing", file=file, key=f"{path}.{name}" if path else name,
                                 hint="the run directory is damaged: start a new run")
            continue
        value = data[name]
        if cls is Plan and name in nested:
            value = _build(nested[name], value, file, name)
        values[name] = value
    return cls(**values)


def read_plan(path: Path) -> Plan:
    """plan.json of a run directory."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise InputError("cannot read the plan: it is nested too deeply to be a plan", file=str(path),
                         hint="the run directory is damaged: start a new run") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the plan: {exc}", file=str(path),
                         hint="the run directory is damaged: start a new run") from None
    plan: Plan = Plan.from_json(data, file=str(path))
    return plan
