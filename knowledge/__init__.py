"""The advisor's knowledge as data: method cards, decision table, ranges, weights, with typed loaders.

Each YAML file has one module of the same name that reads and validates it (knowledge/reader.py is the
reader they share with the answers file); this package re-exports what the other layers use.
"""

from knowledge.architectures import (
    Architecture,
    Architectures,
    BuiltinModel,
    LinearModule,
    load_architectures,
    load_builtin_models,
    load_model_catalog,
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

__all__ = [
    "Architecture", "Architectures", "BuiltinModel", "DEPLOY_TARGETS", "DISTRIBUTED_STRATEGIES", "DecisionTable",
    "DistributedKnowledge", "EVALUATION_METRICS", "EstimatorConstants", "EvaluationSettings", "Evidence", "GOALS",
    "GoalAdvice",
    "HyperparameterRanges", "InputError", "KnowledgeError", "LAYOUTS", "LearningRateBand", "LinearModule", "MethodCard",
    "OPTIMIZERS",
    "PRIORITIES", "RUNNABLE_METHODS", "Rule", "Scorecard", "Strategy", "Threshold", "load_all", "load_evidence",
    "load_architectures", "load_builtin_models", "load_decision_table", "load_distributed", "load_estimator_constants",
    "load_evaluation", "load_hyperparameters", "load_methods", "load_model_catalog", "load_scorecard",
    "method_card",
]

LOADERS = (load_methods, load_decision_table, load_hyperparameters, load_scorecard, load_evaluation,
           load_architectures, load_model_catalog, load_builtin_models, load_estimator_constants, load_distributed,
           load_evidence)


def load_all() -> None:
    """Load and validate every knowledge file (a malformed one raises KnowledgeError)."""
    for load in LOADERS:
        load()
