"""The advisor's knowledge as data: method cards, decision table, ranges, weights, with typed loaders.

Each YAML file has one module of the same name that reads and validates it (knowledge/reader.py is the
reader they share with the answers file); this package re-exports what the other layers use.

The re-exports load on first use (PEP 562): `from knowledge.errors import InputError` or `from knowledge import
GOALS` imports only what it names, which keeps the app's first screen and the pure commands quick.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from knowledge.architectures import (
        Architecture,
        Architectures,
        BuiltinModel,
        Licence,
        LinearModule,
        ModelChoice,
        load_architectures,
        load_builtin_models,
        load_model_catalog,
        load_model_choices,
    )
    from knowledge.decision_table import DecisionTable, GoalAdvice, Rule, load_decision_table
    from knowledge.distributed import DistributedKnowledge, Strategy, load_distributed
    from knowledge.errors import InputError, KnowledgeError
    from knowledge.estimator import EstimatorConstants, load_estimator_constants
    from knowledge.evaluation import EvaluationSettings, load_evaluation
    from knowledge.evidence import Evidence, load_evidence
    from knowledge.hyperparameters import HyperparameterRanges, LearningRateBand, load_hyperparameters
    from knowledge.ids import (
        DEPLOY_TARGETS,
        DISTRIBUTED_STRATEGIES,
        EVALUATION_METRICS,
        GOALS,
        LAYOUTS,
        OPTIMIZERS,
        PRIORITIES,
        RUNNABLE_METHODS,
    )
    from knowledge.methods import MethodCard, load_methods, method_card
    from knowledge.scorecard import Scorecard, Threshold, load_scorecard

#: Where each re-exported name lives.
_WHERE = {
    "Architecture": "knowledge.architectures",
    "Architectures": "knowledge.architectures",
    "BuiltinModel": "knowledge.architectures",
    "LinearModule": "knowledge.architectures",
    "load_architectures": "knowledge.architectures",
    "load_builtin_models": "knowledge.architectures",
    "load_model_catalog": "knowledge.architectures",
    "Licence": "knowledge.architectures",
    "ModelChoice": "knowledge.architectures",
    "load_model_choices": "knowledge.architectures",
    "DecisionTable": "knowledge.decision_table",
    "GoalAdvice": "knowledge.decision_table",
    "Rule": "knowledge.decision_table",
    "load_decision_table": "knowledge.decision_table",
    "DistributedKnowledge": "knowledge.distributed",
    "Strategy": "knowledge.distributed",
    "load_distributed": "knowledge.distributed",
    "InputError": "knowledge.errors",
    "KnowledgeError": "knowledge.errors",
    "EstimatorConstants": "knowledge.estimator",
    "load_estimator_constants": "knowledge.estimator",
    "EvaluationSettings": "knowledge.evaluation",
    "load_evaluation": "knowledge.evaluation",
    "Evidence": "knowledge.evidence",
    "load_evidence": "knowledge.evidence",
    "HyperparameterRanges": "knowledge.hyperparameters",
    "LearningRateBand": "knowledge.hyperparameters",
    "load_hyperparameters": "knowledge.hyperparameters",
    "DEPLOY_TARGETS": "knowledge.ids",
    "DISTRIBUTED_STRATEGIES": "knowledge.ids",
    "EVALUATION_METRICS": "knowledge.ids",
    "GOALS": "knowledge.ids",
    "LAYOUTS": "knowledge.ids",
    "OPTIMIZERS": "knowledge.ids",
    "PRIORITIES": "knowledge.ids",
    "RUNNABLE_METHODS": "knowledge.ids",
    "MethodCard": "knowledge.methods",
    "load_methods": "knowledge.methods",
    "method_card": "knowledge.methods",
    "Scorecard": "knowledge.scorecard",
    "Threshold": "knowledge.scorecard",
    "load_scorecard": "knowledge.scorecard",
}

__all__ = [
    "Architecture", "Architectures", "BuiltinModel", "DecisionTable", "DEPLOY_TARGETS", "DISTRIBUTED_STRATEGIES",
    "DistributedKnowledge", "EstimatorConstants", "EVALUATION_METRICS", "EvaluationSettings", "Evidence",
    "GoalAdvice", "GOALS", "HyperparameterRanges", "InputError", "KnowledgeError", "LAYOUTS", "LearningRateBand",
    "Licence", "LinearModule", "load_all", "load_architectures", "load_builtin_models", "load_decision_table",
    "load_distributed", "load_estimator_constants", "load_evaluation", "load_evidence", "load_hyperparameters",
    "load_methods", "load_model_catalog", "load_model_choices", "load_scorecard", "method_card", "MethodCard",
    "ModelChoice", "OPTIMIZERS", "PRIORITIES", "Rule", "RUNNABLE_METHODS", "Scorecard", "Strategy", "Threshold",
]

#: Every loader, by name: load_all() validates every knowledge file.
LOADER_NAMES = ("load_methods", "load_decision_table", "load_hyperparameters", "load_scorecard", "load_evaluation",
                "load_architectures", "load_model_catalog", "load_builtin_models", "load_estimator_constants",
                "load_distributed", "load_evidence", "load_model_choices")


def __getattr__(name: str) -> Any:
    if name == "LOADERS":
        return tuple(__getattr__(n) for n in LOADER_NAMES)
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'knowledge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def load_all() -> None:
    """Load and validate every knowledge file (a malformed one raises KnowledgeError)."""
    for name in LOADER_NAMES:
        __getattr__(name)()
