"""Making the plan (runner/plan.py) from the answers and the recommendation: every path resolved, the
trainer's step settings, the evaluation settings and the memory the run was planned within.

Pure and fast (no torch): the plan is written to plan.json before the training process starts.
"""

from __future__ import annotations

from typing import Any

from advisor.answers import Answers
from advisor.recommend import Recommendation
from knowledge import load_architectures, load_hyperparameters, load_methods
from knowledge.architectures import licence_problem
from knowledge.errors import InputError
from runner.plan import Plan, PlanData, PlanEvaluation, PlanModel, PlanTraining, step_schedule

__all__ = ["make_plan"]


def _resolved(answers: Answers, path: str | None) -> str | None:
    return None if path is None else str(answers.resolve(path))


def _check_engine(answers: Answers, dist: dict[str, Any]) -> None:
    """A strategy whose engine is not installed is refused before a run directory is made."""
    import importlib.util

    if dist.get("engine") == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise InputError(f"{dist['strategy']} needs DeepSpeed, which is not installed",
                         file=str(answers.source) if answers.source else None, key="overrides.distributed",
                         hint="pip install deepspeed, or use fsdp (full shard, the same memory savings as ZeRO-3) "
                              "or fsdp_grad_op (as ZeRO-2), which need nothing more")


def make_plan(answers: Answers, recommendation: Recommendation) -> Plan:
    """plan.json for one training run."""
    if not answers.data.path:
        raise InputError("training needs a data file", file=str(answers.source) if answers.source else None,
                         key="data.path", hint="set data.path to your JSONL, JSON, CSV or Parquet file")
    method = recommendation.method
    card = load_methods()[method]
    distributed = recommendation.distributed or {"strategy": None, "processes": 1, "nodes": 1}
    _check_engine(answers, distributed)
    ranges = load_hyperparameters()
    hp = dict(recommendation.hyperparameters)
    examples = recommendation.data["train_examples"]
    processes = distributed.get("processes", 1)
    total_steps, eval_steps, _ = step_schedule(examples, hp["batch_size"], hp["gradient_accumulation"], processes,
                                               hp["epochs"], answers.overrides.get("max_steps"))
    modules = None
    model_type = recommendation.model.get("model_type")
    if model_type is not None or recommendation.model["source"] != "params_b":
        arch, _ = load_architectures().for_model_type(model_type)
        modules = {m.name: m.shape for m in arch.modules}
    general_set = answers.evaluation.general_set
    assert answers.data.path is not None
    return Plan(
        goal=answers.goal, method=method, method_family=card.family,
        model=PlanModel(name_or_path=answers.model_location(), trust_remote_code=answers.model.trust_remote_code,
                        modules=modules, params_b=recommendation.model.get("params_b")),
        data=PlanData(path=str(answers.resolve(answers.data.path)),
                      validation_path=_resolved(answers, answers.data.validation_path),
                      test_path=_resolved(answers, answers.data.test_path), layout=answers.data.format,
                      group_by=answers.data.group_by,
                      split={"validation": ranges.split_validation, "test": ranges.split_test}),
        hyperparameters=hp, seed=answers.seed,
        training=PlanTraining(
            max_steps=answers.overrides.get("max_steps"),
            save_steps=answers.overrides.get("save_steps") or max(10, min(500, total_steps // 5 or 1)),
            logging_steps=max(1, min(10, total_steps // 50)), eval_steps=eval_steps,
            tensorboard=answers.overrides.get("tensorboard", True)),
        evaluation=PlanEvaluation(metric=answers.evaluation.metric,
                                  general_set=general_set if general_set == "builtin"
                                  else str(answers.resolve(general_set)), speed=answers.evaluation.speed),
        incompatible_with=[i.feature for i in card.incompatibilities],
        distributed=distributed,
        available_gb=recommendation.memory.get("available_gb"),
        licence_warning=licence_problem(answers.model.name_or_path, answers.use),
    )
