"""Module names a method targets, from knowledge/architectures.yaml (via plan.json)."""

from __future__ import annotations

from runner.plan import Plan

__all__ = ["modules_with_shapes"]


def modules_with_shapes(plan: Plan, shapes: set[str]) -> list[str] | None:
    """Names of the block's linear modules of the given shape kinds, or None if the architecture is unknown."""
    modules = plan.model.modules
    if not modules:
        return None
    return [name for name, shape in modules.items() if shape in shapes] or None
