"""knowledge/distributed.yaml: the strategies for several GPUs or machines (what each shards, its engine)
and the scaling efficiencies the time estimate uses."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from knowledge.files import read_knowledge
from knowledge.ids import DISTRIBUTED_STRATEGIES, RUNNABLE_METHODS

__all__ = ["DistributedKnowledge", "SHARDABLE_STATES", "Strategy", "load_distributed"]

SHARDABLE_STATES = ("weights", "gradients", "optimizer")


@dataclass(frozen=True)
class Strategy:
    id: str
    name: str
    shards: tuple[str, ...]
    """which of weights, gradients, optimizer are split across the processes"""
    engine: str
    """accelerate (torch DDP/FSDP, always installed) | deepspeed (an extra package)"""
    why: str


@dataclass(frozen=True)
class DistributedKnowledge:
    strategies: dict[str, Strategy]
    not_shardable: tuple[str, ...]
    efficiency_ddp: float
    efficiency_sharded: float
    efficiency_across_machines: float
    main_process_port: int

    def efficiency(self, strategy: str, machines: int) -> float:
        """Share of the ideal N-fold speed-up kept by a strategy."""
        base = self.efficiency_ddp if not self.strategies[strategy].shards else self.efficiency_sharded
        return base * (self.efficiency_across_machines if machines > 1 else 1.0)


@functools.cache
def load_distributed() -> DistributedKnowledge:
    top = read_knowledge("distributed.yaml", "strategies", "not_shardable", "scaling_efficiency",
                         "main_process_port")
    strategies = {}
    s_r = top.sub("strategies", DISTRIBUTED_STRATEGIES)
    for sid in s_r.data:
        r = s_r.sub(str(sid), ("name", "shards", "engine", "why"))
        shards = tuple(r.get("shards", list))
        bad = [x for x in shards if x not in SHARDABLE_STATES]
        if bad:
            r.fail(f"unknown state {bad[0]!r}", "shards", f"allowed: {', '.join(SHARDABLE_STATES)}")
        engine = r.choice("engine", ("accelerate", "deepspeed"))
        strategies[str(sid)] = Strategy(str(sid), r.get("name", str), shards, engine, r.get("why", str))
    if "ddp" not in strategies:
        s_r.fail("missing", "ddp")
    not_shardable = tuple(top.strings("not_shardable"))
    unknown = [m for m in not_shardable if m not in RUNNABLE_METHODS]
    if unknown:
        top.fail(f"unknown method {unknown[0]!r}", "not_shardable")
    eff = top.sub("scaling_efficiency", ("ddp", "sharded", "across_machines"))
    values = {k: eff.get(k, float) for k in ("ddp", "sharded", "across_machines")}
    for k, v in values.items():
        if not 0 < v <= 1:
            eff.fail(f"must be in (0, 1], got {v}", k)
    return DistributedKnowledge(strategies, not_shardable, values["ddp"], values["sharded"],
                                values["across_machines"], top.get("main_process_port", int))
