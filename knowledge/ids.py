"""The names every layer shares: method ids, goals, priorities, deploy targets, metrics, strategies, optimizers."""

from __future__ import annotations

__all__ = ["BINARY_METRICS", "DEPLOY_TARGETS", "DISTRIBUTED_STRATEGIES", "EVALUATION_METRICS", "GOALS", "LAYOUTS",
           "MODULE_SHAPES", "OPTIMIZERS", "PRIORITIES", "RUNNABLE_METHODS", "SCORECARD_DIMENSIONS"]

#: The method ids of the design (ARCHITECTURE.md) that the runner can train.
RUNNABLE_METHODS = (
    "full", "freeze", "lora", "dora", "qlora", "prefix", "p_tuning", "p_tuning_v2", "prompt_tuning", "ia3",
)
GOALS = ("style", "knowledge", "reasoning", "agent")
PRIORITIES = ("balanced", "quality", "speed", "memory")
DEPLOY_TARGETS = ("server", "edge")
#: Dataset layouts the readers understand.
LAYOUTS = ("alpaca", "sharegpt", "messages", "text")
MODULE_SHAPES = ("q", "k", "v", "o", "qkv", "gate", "up", "gate_up", "down")
SCORECARD_DIMENSIONS = ("task", "general", "speed", "resources", "deployment")
EVALUATION_METRICS = ("fact_match", "exact_match", "token_f1", "rouge_l", "chrf", "accuracy", "function_call",
                      "argument_f1", "json_valid")
#: Metrics that score each example 0 or 1 (tested with exact McNemar); the others are continuous.
BINARY_METRICS = frozenset({"fact_match", "exact_match", "accuracy", "function_call", "json_valid"})
DISTRIBUTED_STRATEGIES = ("ddp", "fsdp", "fsdp_grad_op", "deepspeed_zero2", "deepspeed_zero3")
#: Optimizer ids of the answers file, and the name transformers' Trainer knows each by.
OPTIMIZERS = {"adamw": "adamw_torch_fused", "adamw_8bit": "adamw_bnb_8bit", "paged_adamw_8bit": "paged_adamw_8bit",
              "paged_adamw_32bit": "paged_adamw_32bit", "sgd": "sgd"}
