"""knowledge/estimator.yaml: the constants of the memory and time estimates, each with its source or the
measurement it was fitted on, and the estimate's error per device."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from knowledge.files import read_knowledge
from knowledge.ids import RUNNABLE_METHODS
from knowledge.reader import Reader

__all__ = ["EstimatorConstants", "load_estimator_constants"]


@dataclass(frozen=True)
class EstimatorConstants:
    cuda_context_gb: float
    allocator_slack: float
    estimate_error: dict[str, tuple[float, str]]
    """device -> (relative error of the memory estimate, where that figure comes from)"""
    cpu_reserved_gb: float
    nf4_block_size: int
    nf4_double_quant_block: int
    logits_bytes_per_element: float
    mfu: dict[str, float]
    cpu_flops_per_cycle: dict[str, float]
    """fp32 FLOP per cycle and core by SIMD kind (avx512, avx2, neon, default)"""
    cpu_default_ghz: float
    cpu_extra_core_efficiency: float
    evaluation: EvaluationConstants
    method_speed_factor: dict[str, dict[str, float]] = field(default_factory=dict)
    """device (cuda | cpu) -> method -> extra wall time beyond the FLOP count"""
    cpu_heap_retention: dict[str, float] = field(default_factory=lambda: {"default": 0.0})
    cpu_heap_max_block_mb: float = 32.0
    cpu_runtime_overhead_gb: float = 0.0
    cpu_process_baseline_gb: float = 0.0
    qlora_activation_bytes: float = 2.0
    cpu_data_bytes_per_token: float = 0.0
    chars_per_token: float = 4.0
    cpu_step_overhead_s: float = 0.0
    run_start_seconds: float = 0.0
    cpu_update_ns_per_param: float = 0.0
    cpu_bf16_speedup: float = 1.0
    gpu_tflops: dict[str, float] = field(default_factory=dict)
    gpu_bandwidth_tbs: dict[str, float] = field(default_factory=dict)

    def gpu_peak_tflops(self, name: str) -> tuple[float, bool]:
        """Peak dense 16-bit TFLOP/s for a GPU name, and whether the name was recognised."""
        return _by_name(self.gpu_tflops, name)

    def gpu_bandwidth(self, name: str) -> tuple[float, bool]:
        """Memory bandwidth in TB/s for a GPU name, and whether the name was recognised."""
        return _by_name(self.gpu_bandwidth_tbs, name)


@dataclass(frozen=True)
class EvaluationConstants:
    """What one forward call of evaluation costs beyond its FLOPs (a step of generation or a general-text passage):
    a fixed time per layer, and the time to read the weights once; per device."""
    layer_call_ms: dict[str, float]
    cpu_seconds_per_gb: dict[str, float]
    """the CPU: seconds per GB of weights a call reads, for a generation step and for a passage (GPUs: from their
    memory bandwidth)"""
    method_call_factor: dict[str, dict[str, float]]
    """device (cuda | cpu) -> method -> a tuned model's call against the plain base's (DoRA's weight norms, ...)"""
    quantized_base_call_factor: dict[str, float]
    """device (cuda | cpu) -> QLoRA's 4-bit base's call against the 16-bit base's"""
    load_seconds_per_gb: float
    fixed_seconds: float


def _by_name(table: dict[str, float], name: str) -> tuple[float, bool]:
    """The value of the longest key that is part of `name` (case ignored), else the table's default."""
    for key in sorted((k for k in table if k != "default"), key=len, reverse=True):
        if key.lower() in name.lower():
            return table[key], True
    return table["default"], False


def _estimate_error(r: Reader) -> dict[str, tuple[float, str]]:
    r.only("cuda", "mps", "cpu")
    out = {}
    for device in ("cuda", "mps", "cpu"):
        entry = r.sub(device, ("relative", "basis"))
        relative = entry.get("relative", float)
        if not 0 <= relative < 1:
            entry.fail(f"must be between 0 and 1, got {relative}", "relative")
        out[device] = (relative, entry.get("basis", str))
    return out


@functools.cache
def load_estimator_constants() -> EstimatorConstants:
    top = read_knowledge("estimator.yaml", "memory", "time", "evaluation", "gpus", "gpu_bandwidth_tbs")
    m = top.sub("memory", ("cuda_context_gb", "allocator_slack", "estimate_error", "cpu_reserved_gb",
                           "nf4_block_size", "nf4_double_quant_block", "logits_bytes_per_element",
                           "cpu_heap_retention", "cpu_heap_max_block_mb", "cpu_runtime_overhead_gb",
                           "cpu_process_baseline_gb", "qlora_activation_bytes",
                           "cpu_data_bytes_per_token"))
    t = top.sub("time", ("mfu", "cpu_flops_per_cycle", "cpu_default_ghz", "cpu_extra_core_efficiency",
                         "method_speed_factor", "chars_per_token", "cpu_step_overhead_s", "run_start_seconds",
                         "cpu_update_ns_per_param", "cpu_bf16_speedup"))
    g = top.sub("gpus")
    heap_r = m.sub("cpu_heap_retention", ("default", *RUNNABLE_METHODS))
    heap = {str(key): heap_r.get(str(key), float) for key in heap_r.data}
    if "default" not in heap:
        heap_r.fail("missing", "default")
    mfu_r = t.sub("mfu", ("cuda", "mps", "cpu"))
    speed_r = t.sub("method_speed_factor", ("cuda", "cpu"))
    cycle_r = t.sub("cpu_flops_per_cycle", ("avx512", "avx2", "neon", "default"))
    speed: dict[str, dict[str, float]] = {}
    for device in ("cuda", "cpu"):
        per_device = speed_r.sub(device, RUNNABLE_METHODS)
        speed[device] = {str(k): per_device.get(str(k), float) for k in per_device.data}
    gpus = {str(k): g.get(str(k), float) for k in g.data}
    if "default" not in gpus:
        g.fail("missing", "default")
    b = top.sub("gpu_bandwidth_tbs")
    bandwidth = {str(k): b.get(str(k), float) for k in b.data}
    if "default" not in bandwidth:
        b.fail("missing", "default")
    return EstimatorConstants(
        cuda_context_gb=m.get("cuda_context_gb", float), allocator_slack=m.get("allocator_slack", float),
        estimate_error=_estimate_error(m.sub("estimate_error")), cpu_reserved_gb=m.get("cpu_reserved_gb", float),
        nf4_block_size=m.get("nf4_block_size", int), nf4_double_quant_block=m.get("nf4_double_quant_block", int),
        logits_bytes_per_element=m.get("logits_bytes_per_element", float),
        mfu={k: mfu_r.get(k, float) for k in ("cuda", "mps", "cpu")},
        cpu_flops_per_cycle={k: cycle_r.get(k, float) for k in ("avx512", "avx2", "neon", "default")},
        cpu_default_ghz=t.get("cpu_default_ghz", float), method_speed_factor=speed,
        cpu_extra_core_efficiency=t.get("cpu_extra_core_efficiency", float),
        chars_per_token=t.get("chars_per_token", float), gpu_tflops=gpus,
        cpu_step_overhead_s=t.get("cpu_step_overhead_s", float),
        run_start_seconds=t.get("run_start_seconds", float),
        cpu_update_ns_per_param=t.get("cpu_update_ns_per_param", float),
        cpu_bf16_speedup=t.get("cpu_bf16_speedup", float),
        cpu_heap_retention=heap, cpu_heap_max_block_mb=m.get("cpu_heap_max_block_mb", float),
        cpu_runtime_overhead_gb=m.get("cpu_runtime_overhead_gb", float),
        cpu_process_baseline_gb=m.get("cpu_process_baseline_gb", float),
        qlora_activation_bytes=m.get("qlora_activation_bytes", float),
        cpu_data_bytes_per_token=m.get("cpu_data_bytes_per_token", float),
        gpu_bandwidth_tbs=bandwidth, evaluation=_evaluation(top.sub("evaluation")),
    )


def _evaluation(r: Reader) -> EvaluationConstants:
    r.only("layer_call_ms", "cpu_seconds_per_gb", "method_call_factor", "quantized_base_call_factor",
           "load_seconds_per_gb", "fixed_seconds")
    quantized = r.sub("quantized_base_call_factor", ("cuda", "cpu"))
    layer = r.sub("layer_call_ms", ("cuda", "mps", "cpu"))
    per_gb = r.sub("cpu_seconds_per_gb", ("generation_step", "passage"))
    factor_r = r.sub("method_call_factor", ("cuda", "cpu"))
    factors: dict[str, dict[str, float]] = {}
    for device in ("cuda", "cpu"):
        per_device = factor_r.sub(device, RUNNABLE_METHODS)
        factors[device] = {str(k): per_device.get(str(k), float) for k in per_device.data}
    return EvaluationConstants(
        layer_call_ms={k: layer.get(k, float) for k in ("cuda", "mps", "cpu")},
        cpu_seconds_per_gb={k: per_gb.get(k, float) for k in ("generation_step", "passage")},
        method_call_factor=factors,
        quantized_base_call_factor={k: quantized.get(k, float) for k in ("cuda", "cpu")},
        load_seconds_per_gb=r.get("load_seconds_per_gb", float), fixed_seconds=r.get("fixed_seconds", float))
