"""Fitting a method into memory: the fastest batch, checkpointing and length that fit with the estimate's error
kept free; the strategies to try over several processes; and, when nothing fits, how many GPUs or how small a
model would."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from advisor.batches import BatchTokens, batch_tokens
from advisor.estimate import EstimateConfig, MemoryEstimate, estimate_memory
from advisor.hardware import Hardware
from advisor.model_profile import ModelProfile, profile_from_params
from knowledge import load_distributed, load_estimator_constants, load_hyperparameters, load_methods

__all__ = ["BatchSizer", "Fit", "data_sizer", "ONE_PROCESS", "Scale", "available_memory_gb", "estimate_config",
           "fit_memory", "gpus_to_fit", "largest_fitting_params_b", "scales_for"]


def available_memory_gb(hardware: Hardware) -> tuple[float, str]:
    """Memory one training process may use, and on what: the smallest GPU, or RAM less a reserve."""
    if hardware.gpus:
        gpu = min(hardware.gpus, key=lambda g: g.memory_gb)
        return gpu.memory_gb, "cuda"
    k = load_estimator_constants()
    ram = hardware.ram_gb or 8.0
    return max(0.5, ram - k.cpu_reserved_gb), "cpu"


@dataclass(frozen=True)
class Scale:
    """How many training processes, on how many machines, with which strategy (None: one process)."""
    processes: int = 1
    machines: int = 1
    strategy: str | None = None


ONE_PROCESS = Scale()


#: The data's batches at (batch size, max_length), from its measured lengths (advisor/batches.py), or None.
BatchSizer = Callable[[int, int], BatchTokens] | None


def estimate_config(method: str, hp: dict[str, Any], device: str, batch: int, gc: bool, seq: int,
                    scale: Scale = ONE_PROCESS, batches: BatchTokens | None = None) -> EstimateConfig:
    """The estimator's configuration for a method's settings at one batch, checkpointing and length; with the
    data's batches, the largest one the run meets and the tokens it holds."""
    return EstimateConfig(processes=scale.processes, machines=scale.machines, strategy=scale.strategy,
        batch_tokens=batches.typical if batches else None, data_tokens=batches.held if batches else 0,
        cpu_bf16=hp.get("precision") == "bf16",
        method=method, batch_size=batch, seq_len=seq, gradient_checkpointing=gc, bits=hp.get("bits"),
        optimizer=hp.get("optimizer", "adamw"), lora_rank=hp.get("lora_rank", 16),
        lora_targets=hp.get("lora_targets", "all-linear"), lora_dropout=hp.get("lora_dropout", 0.0),
        num_virtual_tokens=hp.get("num_virtual_tokens", 20), encoder_hidden_size=hp.get("encoder_hidden_size"),
        freeze_trainable_layers=hp.get("freeze_trainable_layers", 2), device=device)


def data_sizer(lengths: list[int] | None, method: str, hp: dict[str, Any], device: str, examples: int,
               processes: int = 1, seed: int = 0) -> BatchSizer:
    """The run's batches at each (batch size, max_length) the fit tries, from the examples' token lengths;
    None without them. Packing as the training process decides it (the card's `packs`); each process trains
    on its share of the examples."""
    if not lengths:
        return None
    card = load_methods()[method]
    epochs = max(1, math.ceil(float(hp.get("epochs", 1))))

    def sizer(batch: int, max_length: int) -> BatchTokens:
        return batch_tokens(lengths, batch=batch, max_length=max_length,
                            packed=card.packs(bool(hp.get("packing")), batch),
                            examples=max(1, examples // processes), epochs=epochs,
                            pad_multiple=8 if device == "cuda" else 1, seed=seed)

    return sizer


@dataclass
class Fit:
    """One configuration and its estimate; shortened_from: the planned max_length when it had to be cut."""
    config: EstimateConfig
    memory: MemoryEstimate
    fits: bool
    shortened_from: int | None = None
    batches: BatchTokens | None = None
    """The run's batches at this configuration, when the data's lengths are known."""


def fit_memory(method: str, hp: dict[str, Any], model: ModelProfile, device: str, usable_gb: float,
               fixed: dict[str, Any], min_length: int, scale: Scale = ONE_PROCESS, sizer: BatchSizer = None) -> Fit:
    """The fastest settings that fit: largest batch without checkpointing, then with, then shorter sequences.
    With the data's lengths (`sizer`), a batch holds the tokens the run's largest batch will hold, not
    batch x max_length."""
    ranges = load_hyperparameters()
    batches = [fixed["batch_size"]] if "batch_size" in fixed else ranges.batch_size_candidates
    gc_allowed = load_methods()[method].incompatible_with("gradient_checkpointing") is None
    gcs = [fixed["gradient_checkpointing"]] if "gradient_checkpointing" in fixed else ([False, True] if gc_allowed
                                                                                        else [False])
    seq = hp["max_length"]
    lengths = [seq]
    if "max_length" not in fixed:
        while lengths[-1] // 2 >= max(128, min_length):
            lengths.append(lengths[-1] // 2)
    last = None
    for length in lengths:
        for gc in gcs:
            for batch in batches:
                sized = sizer(batch, length) if sizer else None
                cfg = estimate_config(method, hp, device, batch, gc, length, scale, sized)
                mem = estimate_memory(model, cfg)
                last = Fit(cfg, mem, mem.estimated_gb <= usable_gb, seq if length != seq else None, sized)
                if last.fits:
                    return last
    assert last is not None
    # nothing fits: report the smallest configuration at the planned length
    sized = sizer(batches[-1], seq) if sizer else None
    cfg = estimate_config(method, hp, device, batches[-1], gcs[-1], seq, scale, sized)
    return Fit(cfg, estimate_memory(model, cfg), False, batches=sized)


def scales_for(method: str, processes: int, machines: int, chosen: str | None) -> list[Scale]:
    """The strategies to try for a method, fastest first: DDP, then full sharding when DDP does not fit."""
    if processes == 1:
        return [ONE_PROCESS]
    if chosen:
        return [Scale(processes, machines, chosen)]
    shardable = method not in load_distributed().not_shardable
    return [Scale(processes, machines, "ddp")] + ([Scale(processes, machines, "fsdp")] if shardable else [])


def gpus_to_fit(method: str, hp: dict[str, Any], model: ModelProfile, usable_gb: float, min_length: int,
                machines: int) -> int | None:
    """The fewest GPUs (2, 4 or 8 a machine) that train `method` with full sharding, or None."""
    if method in load_distributed().not_shardable:
        return None
    for n in (2, 4, 8):
        scale = Scale(n * machines, machines, "fsdp")
        if fit_memory(method, hp, model, "cuda", usable_gb, {}, min_length, scale).fits:
            return n
    return None


def largest_fitting_params_b(model: ModelProfile, hp: dict[str, Any], device: str, usable_gb: float) -> float | None:
    """The largest model size (B parameters) that QLoRA fits with batch 1 and checkpointing, or None."""
    def fits(params_b: float) -> bool:
        shape = profile_from_params(params_b, model.name)
        cfg = estimate_config("qlora", {**hp, "bits": 4}, device, 1, True, hp["max_length"])
        return estimate_memory(shape, cfg).estimated_gb <= usable_gb

    low, high = 0.05, model.params_b
    if not fits(low):
        return None
    for _ in range(20):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if fits(mid) else (low, mid)
    return round(low, 1) if low >= 1 else round(low, 2)
