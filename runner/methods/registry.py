"""The registry of method builders, one per family of knowledge/methods.yaml (as PEFT registers its tuners):
build(model, plan) -> the model prepared for training."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runner.plan import Plan

__all__ = ["BUILDERS", "Builder", "register"]

Builder = Callable[[Any, Plan], Any]

BUILDERS: dict[str, Builder] = {}


def register(family: str) -> Callable[[Builder], Builder]:
    """Register the builder of a method family."""
    def add(builder: Builder) -> Builder:
        if family in BUILDERS:
            raise ValueError(f"two builders for the {family} family")
        BUILDERS[family] = builder
        return builder
    return add
