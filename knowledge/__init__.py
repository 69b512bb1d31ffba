"""The advisor's knowledge as data: method cards, decision table, ranges, weights, with typed loaders."""

from knowledge.loader import (
    DEPLOY_TARGETS,
    GOALS,
    PRIORITIES,
    RUNNABLE_METHODS,
    KnowledgeError,
    load_all,
    load_architectures,
    load_decision_table,
    load_estimator_constants,
    load_hyperparameters,
    load_methods,
    load_model_catalog,
    load_scorecard,
)

__all__ = [
    "DEPLOY_TARGETS", "GOALS", "PRIORITIES", "RUNNABLE_METHODS", "KnowledgeError", "load_all",
    "load_architectures", "load_decision_table", "load_estimator_constants", "load_hyperparameters",
    "load_methods", "load_model_catalog", "load_scorecard",
]
