"""Peak training memory and training time for one configuration, from the model's shapes.

Memory is the sum of what is alive at the peak of a training step (GB = 1e9 bytes):

    weights            base weights at their storage bits; under 4/8-bit, embeddings, head, norms and
                       biases stay unquantized (fp32 after prepare_model_for_kbit_training)
    trainable          the trained parameters (fp32 for adapters; the base dtype for full and freeze)
    optimizer          optimizer states per trainable parameter (AdamW: 2 states)
    max(A, G)          A: activations saved for backward + the loss-time logits (+ the head's gradient)
                       G: the gradients + the optimizer step's temporaries (activations are gone by then)
    overhead           CUDA: context + caching-allocator slack on the activations
                       CPU: glibc heap retention (freed blocks under 32 MiB stay resident; measured per method)
                       and a small runtime overhead (Trainer state, malloc arenas)

Activations are counted per token and block from the tensors autograd keeps (see _block_activation_bytes),
after Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models"), adapted to
HF's Llama-style blocks: RMSNorm upcasts to fp32, SDPA keeps q, k, v and the output (k and v expanded to
all heads when a padding mask is present), gated MLPs keep the gate, the activation and the up projection.

Time: tokens x FLOPs per token / (peak FLOP/s x utilisation), with a per-method slow-down factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from advisor.model_profile import ModelProfile
from knowledge import (
    OPTIMIZERS,
    RUNNABLE_METHODS,
    load_distributed,
    load_estimator_constants,
    load_methods,
    method_card,
)
from knowledge.errors import InputError
from runner.generation import GEN_BATCH, SPEED_PROMPTS, SPEED_ROUNDS, SPEED_TOKENS

__all__ = ["TRAINING_ONLY", "EstimateConfig", "EvaluationEstimate", "MemoryEstimate", "TimeEstimate", "compute_rate",
           "default_bits", "duration", "estimate_evaluation", "estimate_memory", "estimate_time",
           "linear_flops_per_token", "lora_target_modules", "run_start_seconds", "trainable_params"]

GB = 1e9
#: How the training estimate ends: the evaluation after training has its own (estimate_evaluation).
TRAINING_ONLY = "; the final evaluation not included"


@dataclass(frozen=True)
class EstimateConfig:
    method: str
    batch_size: int = 1
    seq_len: int = 1024
    gradient_checkpointing: bool = False
    bits: int | None = None
    """Storage bits of the base weights; None: 4 for QLoRA, else 16 on a GPU and 32 on the CPU."""
    double_quant: bool = True
    optimizer: str = "adamw"
    lora_rank: int = 16
    lora_targets: str = "all-linear"
    lora_dropout: float = 0.0
    num_virtual_tokens: int = 20
    encoder_hidden_size: int | None = None
    freeze_trainable_layers: int = 2
    device: str = "cuda"
    """cuda | mps | cpu"""
    processes: int = 1
    """training processes in all (GPUs over all machines, or CPU processes); memory is per process"""
    strategy: str | None = None
    """None (one process) | a strategy of knowledge/distributed.yaml: ddp, fsdp, fsdp_grad_op, deepspeed_zero2/3"""
    machines: int = 1
    batch_tokens: int | None = None
    """Tokens in the step's largest batch, from the data's lengths (advisor/batches.py); None: every sequence
    padded to seq_len, batch_size x seq_len"""
    data_tokens: int = 0
    """Tokens of the encoded training examples the process holds (CPU RAM: counted on the CPU only)"""
    cpu_bf16: bool = False
    """The CPU computes in bf16 (the Trainer's autocast; weights stay fp32): half-size activations, faster steps"""


@dataclass
class MemoryEstimate:
    estimated_gb: float
    breakdown: dict[str, float]
    """weights, trainable_and_optimizer, activations, overhead (GB); they add up to estimated_gb."""
    detail: dict[str, float]
    trainable_params: int
    total_params: int
    assumptions: list[str] = field(default_factory=list)
    total_bytes: float = 0.0
    """The unrounded estimate in bytes."""
    relative_error: float = 0.0
    """The estimate's error on this device, as measured (knowledge/estimator.yaml estimate_error)."""
    error_basis: str = ""

    @property
    def uncertainty_gb(self) -> float:
        return round(self.estimated_gb * self.relative_error, 2)

    def to_dict(self) -> dict[str, Any]:
        return {"estimated_gb": self.estimated_gb, "uncertainty_gb": self.uncertainty_gb,
                "relative_error": self.relative_error, "error_basis": self.error_basis,
                "breakdown": self.breakdown, "detail": self.detail,
                "trainable_params": self.trainable_params, "total_params": self.total_params,
                "trainable_percent": round(100 * self.trainable_params / self.total_params, 4),
                "assumptions": self.assumptions}


@dataclass
class TimeEstimate:
    estimated_hours: float
    tokens: int
    """Tokens computed (padding included)."""
    flops: float
    flops_per_s: float
    basis: str
    """The estimate as a sentence: how long, how many tokens, how fast, on what."""
    formula: str = ""
    """How it was computed: tokens x FLOPs per token over the device's peak x utilisation."""
    trained_tokens: int = 0
    """Tokens of the examples themselves (what the run's tokens/s counts)."""
    seconds: float = 0.0
    """The estimate, unrounded."""

    @property
    def tokens_per_s(self) -> float:
        return round(self.trained_tokens / self.seconds, 1) if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"estimated_hours": self.estimated_hours, "seconds": round(self.seconds, 1), "tokens": self.tokens,
                "trained_tokens": self.trained_tokens,
                "tokens_per_s": self.tokens_per_s, "flops": self.flops,
                "effective_tflops": round(self.flops_per_s / 1e12, 3), "basis": self.basis, "formula": self.formula}


@dataclass
class EvaluationEstimate:
    seconds: float
    basis: str
    """The estimate as a sentence: how long, for how many examples and passages, with which models."""
    parts: dict[str, float]
    """Seconds of each part: loading, generation, general_text, speed."""

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 1), "basis": self.basis,
                "parts": {k: round(v, 1) for k, v in self.parts.items()}}


def duration(hours: float) -> str:
    """'under a minute', 'about 36 min', 'about 2.5 h'."""
    if hours * 60 < 1:
        return "under a minute"
    return f"about {hours * 60:.0f} min" if hours < 1 else f"about {hours:.1f} h"


def default_bits(method: str, device: str) -> int:
    """Storage bits of the base weights: the card's (4 for QLoRA), else 16 on a CUDA GPU and 32 on the CPU and
    MPS, where the runner trains in fp32 (runner/model.py compute_dtype_name)."""
    card = method_card(method)
    if card.quantized:
        return int(card.defaults["bits"])
    return 16 if device == "cuda" else 32


def _check(profile: ModelProfile, cfg: EstimateConfig) -> None:
    if cfg.method not in RUNNABLE_METHODS:
        raise InputError(f"unknown method {cfg.method!r}", key="method", hint=f"one of: {', '.join(RUNNABLE_METHODS)}")
    if cfg.optimizer not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {cfg.optimizer!r}", key="optimizer",
                         hint=f"one of: {', '.join(OPTIMIZERS)}")
    if cfg.bits not in (None, 4, 8, 16, 32):
        raise InputError(f"bits must be 4, 8, 16 or 32, got {cfg.bits}", key="bits")
    if cfg.device not in ("cuda", "mps", "cpu"):
        raise InputError(f"unknown device {cfg.device!r}", key="device", hint="cuda, mps or cpu")
    if cfg.batch_tokens is not None and cfg.batch_tokens < 1:
        raise InputError(f"must be at least 1, got {cfg.batch_tokens}", key="batch_tokens")
    if cfg.data_tokens < 0:
        raise InputError(f"must be at least 0, got {cfg.data_tokens}", key="data_tokens")
    for key in ("batch_size", "seq_len", "lora_rank", "num_virtual_tokens", "freeze_trainable_layers"):
        if getattr(cfg, key) < 1:
            raise InputError(f"must be at least 1, got {getattr(cfg, key)}", key=key)
    bad = load_methods()[cfg.method].incompatible_with("gradient_checkpointing")
    if cfg.gradient_checkpointing and bad:
        raise InputError(f"{cfg.method} cannot be trained with gradient checkpointing: {bad.why}",
                         key="gradient_checkpointing", hint="leave it off, or choose LoRA/QLoRA")
    if cfg.processes < 1 or cfg.machines < 1:
        raise InputError("processes and machines must be at least 1", key="processes")
    if cfg.strategy is not None:
        known = load_distributed()
        if cfg.strategy not in known.strategies:
            raise InputError(f"unknown distributed strategy {cfg.strategy!r}", key="distributed",
                             hint=f"one of: {', '.join(known.strategies)}")
        if known.strategies[cfg.strategy].shards and cfg.method in known.not_shardable:
            raise InputError(f"{cfg.method} cannot be sharded with {cfg.strategy}: its quantized base weights "
                             "cannot be split", key="distributed", hint="use ddp (each GPU holds the 4-bit model)")
    bits = cfg.bits or default_bits(cfg.method, cfg.device)
    if method_card(cfg.method).quantized and bits not in (4, 8):
        raise InputError(f"QLoRA quantizes the base to 4 or 8 bits, not {bits}", key="bits")
    if method_card(cfg.method).full_model and bits in (4, 8):
        raise InputError(f"{cfg.method} fine-tuning cannot train quantized {bits}-bit weights", key="bits",
                         hint="use qlora to train over a quantized base")
    if cfg.method == "freeze" and cfg.freeze_trainable_layers > profile.num_layers:
        raise InputError(f"the model has {profile.num_layers} blocks; cannot train the last "
                         f"{cfg.freeze_trainable_layers}", key="freeze_trainable_layers")


def lora_target_modules(profile: ModelProfile, targets: str) -> list[tuple[str, str, int, int]]:
    """The linear modules of one block that LoRA adapts: (name, shape kind, in, out)."""
    modules = profile.linear_modules()
    if targets in ("all-linear", "all_linear", "all"):
        return modules
    wanted = [t.strip() for t in targets.split(",") if t.strip()]
    names = sorted({m[0] for m in modules})
    unknown = [t for t in wanted if t not in names and not any(n.endswith("." + t) for n in names)]
    if unknown or not wanted:
        raise InputError(f"no module named {', '.join(unknown) or '(none)'} in a {profile.architecture.family} block",
                         key="lora_targets", hint=f"choose from {', '.join(names)}, or all-linear")
    return [m for m in modules if m[0] in wanted or any(m[0].endswith("." + t) for t in wanted)]


def _encoder_hidden(cfg: EstimateConfig, width: int) -> int:
    if cfg.encoder_hidden_size:
        return cfg.encoder_hidden_size
    default = load_methods()[cfg.method].defaults.get("encoder_hidden_size")
    return int(default) if default else width


def trainable_params(profile: ModelProfile, cfg: EstimateConfig) -> int:
    """Parameters the method trains, counted the way peft builds them."""
    m, layers, n = cfg.method, profile.num_layers, cfg.num_virtual_tokens
    if m == "full":
        return profile.total_params
    if m == "freeze":
        return cfg.freeze_trainable_layers * (profile.block_linear_params + profile.block_other_params)
    card = method_card(m)
    if card.lora_like:
        per_block = sum(cfg.lora_rank * (fin + fout) + (fout if m == "dora" else 0)
                        for _, _, fin, fout in lora_target_modules(profile, cfg.lora_targets))
        return layers * per_block
    if card.deep_prompts:
        width = profile.kv_dim  # peft: head_dim x KV heads for grouped-query models
        kv_all = layers * 2 * width
        if m == "p_tuning_v2":  # PrefixTuningConfig(prefix_projection=False): one embedding per layer and K/V
            return n * kv_all
        e = _encoder_hidden(cfg, width)  # prefix_projection=True: Embedding -> Linear -> Tanh -> Linear
        return n * width + (width * e + e) + (e * kv_all + kv_all)
    h = profile.hidden_size
    if m == "prompt_tuning":
        return n * h
    if m == "p_tuning":  # PromptEncoder, MLP: Linear(h,e) ReLU Linear(e,e) ReLU Linear(e,h)
        e = _encoder_hidden(cfg, h)
        return n * h + (h * e + e) + (e * e + e) + (e * h + h)
    if m == "ia3":  # peft IA3: vectors on the K and V outputs and on the input of the feed-forward down projection
        kinds = {k for _, k, _, _ in profile.linear_modules()}
        attn = 2 * profile.kv_dim if {"k", "v"} <= kinds else profile.q_dim + 2 * profile.kv_dim
        return layers * (attn + profile.ffn_size)
    raise AssertionError(m)


def _block_activation_bytes(profile: ModelProfile, cfg: EstimateConfig, trainable_weights: bool,
                            compute_bytes: int) -> float:
    """Bytes per token that one block keeps for backward (with no gradient checkpointing).

    A frozen linear layer keeps nothing: the gradient of its input needs only the weight. A trainable
    one keeps its input. A LoRA module keeps its own copy of its input when the adapter's dtype (fp32)
    differs from the compute dtype (peft casts it), plus a dropout mask when dropout is on.
    """
    c, h, f = compute_bytes, profile.hidden_size, profile.ffn_size
    q = profile.q_dim
    experts = profile.experts_per_token
    lora = set()
    if method_card(cfg.method).lora_like:
        lora = {name for name, *_ in lora_target_modules(profile, cfg.lora_targets)}
    lora_copy = c if c != 4 else 0  # fp32 base: no cast, LoRA shares the input tensor
    total = 0.0
    # The norms. RMSNorm: an fp32 copy of the input is kept (pow and mul); LayerNorm: the input.
    norm = 4 * h if profile.architecture.norm == "rms" else c * h
    if trainable_weights and profile.architecture.norm == "rms":
        norm += c * h  # the normalised 16-bit tensor, for the weight's gradient
    total += profile.architecture.norms_per_block * norm
    # Attention core (SDPA): q, k, v (expanded to all heads) and the output.
    total += 4 * c * q
    shared_inputs: dict[str, float] = {}  # modules that read the same tensor share one saved copy
    mlp_kinds = ("gate", "up", "gate_up", "down")
    for name, kind, fin, _ in profile.unique_modules():
        scale = experts if kind in mlp_kinds else 1
        source = "attn_in" if kind in ("q", "k", "v", "qkv") else "mlp_in" if kind in ("gate", "up", "gate_up") \
            else name
        if trainable_weights:
            shared_inputs[source] = c * fin * scale
        if name in lora:
            if cfg.lora_dropout > 0:
                total += (c + 1) * fin * scale          # dropout output (as the adapter's input) + mask
            elif lora_copy:
                total += lora_copy * fin * scale         # the cast copy peft makes
            else:
                shared_inputs[source] = c * fin * scale  # fp32 everywhere: the input tensor itself
            if cfg.method == "dora":
                total += 2 * c * _module_out(profile, kind) * scale  # base output and LoRA output (magnitude)
    total += sum(shared_inputs.values())
    # MLP internals: gated keeps gate output, activation output and up output; plain keeps the pre-activation.
    # QLoRA on a GPU: fp32 (prepare_model_for_kbit_training's fp32 norms feed Linear4bit, which returns its
    # input's dtype), so the MLP internals are kept at qlora_activation_bytes.
    mlp = _residual_bytes(cfg, c)
    total += (3 if profile.architecture.mlp == "gated" else 1) * mlp * f * experts
    if cfg.method == "ia3":
        total += c * (2 * profile.kv_dim + f)  # the rescaled outputs and the scaled down-projection input
    return total


def _residual_bytes(cfg: EstimateConfig, compute_bytes: int) -> int:
    """Bytes of one element of the tensors flowing between blocks: the compute dtype, except QLoRA on a GPU, where
    they are fp32 (knowledge/estimator.yaml qlora_activation_bytes)."""
    if method_card(cfg.method).quantized and cfg.device != "cpu":
        return int(load_estimator_constants().qlora_activation_bytes)
    return compute_bytes


def _module_out(profile: ModelProfile, kind: str) -> int:
    return profile.module_shape(kind)[1]


def estimate_memory(profile: ModelProfile, cfg: EstimateConfig) -> MemoryEstimate:
    """Peak memory of one training step; see the module docstring for the terms."""
    _check(profile, cfg)
    k = load_estimator_constants()
    m = cfg.method
    bits = cfg.bits or default_bits(m, cfg.device)
    on_gpu = cfg.device in ("cuda", "mps")
    # compute dtype bytes: bf16/fp16 on a GPU, bf16 on a CPU with bf16 units (autocast), else fp32
    c = 2 if (bits <= 16 and on_gpu) or (cfg.cpu_bf16 and cfg.device == "cpu") else 4
    assumptions: list[str] = []
    layers, v = profile.num_layers, profile.vocab_size
    card = method_card(m)
    virtual = cfg.batch_size * cfg.num_virtual_tokens if card.input_prompts else 0
    tokens = (cfg.batch_tokens if cfg.batch_tokens else cfg.batch_size * cfg.seq_len) + virtual

    # ---- weights
    quantizable = layers * profile.block_linear_params
    other = profile.total_params - quantizable
    if bits == 4:
        per_param = 0.5 + (1 / k.nf4_block_size + 4 / (k.nf4_block_size * k.nf4_double_quant_block)
                           if cfg.double_quant else 4 / k.nf4_block_size)
        weights_q: float = quantizable * per_param
        weights_o: float = other * 4
        assumptions.append(f"4-bit NF4 {'with' if cfg.double_quant else 'without'} double quantization: "
                           f"{per_param * 8:.3f} bits per block weight; embeddings, head, norms and biases in fp32 "
                           "(prepare_model_for_kbit_training upcasts them)")
    elif bits == 8:
        weights_q = quantizable * 1.0
        weights_o = other * 4
        assumptions.append("8-bit LLM.int8 block weights; embeddings, head, norms and biases in fp32")
    else:
        weights_q, weights_o = quantizable * bits / 8, other * bits / 8
    weights = weights_q + weights_o

    # ---- trainable parameters, gradients, optimizer
    n_train = trainable_params(profile, cfg)
    if card.full_model:
        p_bytes = bits / 8
        trainable_bytes = 0.0  # the trained weights are part of the base weights above
    else:
        p_bytes = 4.0          # peft keeps adapter weights in fp32 (autocast_adapter_dtype)
        trainable_bytes = n_train * p_bytes
    grads = n_train * p_bytes
    state_bytes = {"adamw": 2 * p_bytes, "paged_adamw_32bit": 8.0, "adamw_8bit": 2.0, "paged_adamw_8bit": 2.0,
                   "sgd": 0.0}[cfg.optimizer]
    optimizer = n_train * state_bytes
    step_temp = n_train * p_bytes if cfg.optimizer in ("adamw", "paged_adamw_32bit") and cfg.device == "cuda" else 0
    if cfg.optimizer.startswith("paged"):
        assumptions.append("paged optimizer states are counted in full: paging only moves them to CPU RAM "
                           "under pressure")

    # ---- several processes: what the strategy splits, and what it adds
    ddp_buckets = gathered = 0.0
    if cfg.strategy is not None and cfg.processes > 1:
        strategy = load_distributed().strategies[cfg.strategy]
        n = cfg.processes
        if "weights" in strategy.shards:  # one block gathered in full, and the next one prefetched
            block_bytes = (profile.block_linear_params + profile.block_other_params) * bits / 8
            gathered = 2 * block_bytes
            weights_q, weights_o = weights_q / n, weights_o / n
            weights = weights_q + weights_o + gathered
            trainable_bytes /= n
        if "gradients" in strategy.shards:
            grads /= n
            step_temp /= n
        if "optimizer" in strategy.shards:
            optimizer /= n
        if not strategy.shards:  # DDP's reducer copies the gradients into its communication buckets
            ddp_buckets = n_train * p_bytes
        assumptions.append(f"{strategy.name} over {n} processes: "
                           + (f"{', '.join(strategy.shards)} split {n} ways" if strategy.shards else
                              "everything replicated, plus DDP's gradient buckets") + "; memory is per process")

    # ---- activations
    trainable_weights = m == "full"
    per_block = _block_activation_bytes(profile, cfg, trainable_weights, c)
    if m == "freeze":  # blocks below the first trained one need no backward: they keep nothing
        saving_layers = cfg.freeze_trainable_layers
        per_block = _block_activation_bytes(profile, cfg, True, c)
    else:
        saving_layers = layers
    if cfg.gradient_checkpointing:
        # each block keeps only its input; one block's activations are recomputed at a time in backward
        block_acts = tokens * (saving_layers * _residual_bytes(cfg, c) * profile.hidden_size + per_block)
        assumptions.append("gradient checkpointing: one block input kept per block, one block recomputed at a time")
    else:
        block_acts = tokens * saving_layers * per_block
    final_norm = tokens * (4 * profile.hidden_size + (c * profile.hidden_size if trainable_weights else 0))
    prefix_kv = 0.0
    if card.deep_prompts:  # the prefix keys/values, and the attention reading them (per sequence)
        prefix_kv = cfg.batch_size * cfg.num_virtual_tokens * layers * (2 * profile.kv_dim + 2 * profile.q_dim) * c
    logits = tokens * v * k.logits_bytes_per_element
    head_grad = v * profile.hidden_size * p_bytes if trainable_weights else 0.0
    autocast_copies = 0.0
    if cfg.cpu_bf16 and cfg.device == "cpu" and card.full_model:  # autocast keeps bf16 copies of trained weights
        autocast_copies = n_train * 2.0
    if card.quantized and on_gpu:  # autocast's 16-bit copy of the fp32 head, saved for backward
        head_grad += v * profile.hidden_size * c
    activations = block_acts + final_norm + prefix_kv + logits + head_grad + autocast_copies
    peak_dynamic = max(activations, grads + step_temp)

    # ---- overhead
    context = k.cuda_context_gb * GB if cfg.device == "cuda" else 0.0
    runtime = k.cpu_runtime_overhead_gb * GB if cfg.device == "cpu" else 0.0
    baseline = k.cpu_process_baseline_gb * GB if cfg.device == "cpu" else 0.0
    slack = k.allocator_slack * activations if cfg.device == "cuda" else 0.0
    heap = _cpu_heap_retention(profile, cfg, tokens, saving_layers) if cfg.device == "cpu" else 0.0
    data = cfg.data_tokens * k.cpu_data_bytes_per_token if cfg.device == "cpu" else 0.0
    overhead = context + slack + heap + runtime + baseline + data
    if cfg.device == "cpu":
        assumptions.append(f"CPU: fp32 weights and compute; no CUDA context but {k.cpu_runtime_overhead_gb:g} GB of "
                           "runtime overhead; glibc's heap "
                           "keeps freed activation blocks under 32 MB resident (a CPU-only term: "
                           "MALLOC_MMAP_THRESHOLD_=131072 returns them, about 20% slower); the figure is the "
                           f"process's whole peak, {k.cpu_process_baseline_gb:g} GB of it python and the libraries")
    assumptions.append("SDPA attention without materialised scores; k and v expanded to all heads (padded batches)")
    assumptions.append(f"logits at the loss: {k.logits_bytes_per_element:g} bytes per token and vocabulary entry "
                       "(fp32 upcast, log-softmax output, its gradient)")

    # gradients grow as activations are freed in backward: the larger of the two is the peak
    dynamic_gb = peak_dynamic / GB
    total = weights + trainable_bytes + optimizer + ddp_buckets + peak_dynamic + overhead
    train_opt = trainable_bytes + optimizer + ddp_buckets + (peak_dynamic - activations)
    breakdown = {
        "weights": round(weights / GB, 3),
        "trainable_and_optimizer": round(train_opt / GB, 3),
        "activations": round(activations / GB, 3),
        "overhead": round(overhead / GB, 3),
    }
    detail = {
        "weights_quantized_or_blocks": round(weights_q / GB, 3), "weights_unquantized": round(weights_o / GB, 3),
        "trainable_weights": round(trainable_bytes / GB, 3), "gradients": round(grads / GB, 3),
        "optimizer_states": round(optimizer / GB, 3), "optimizer_step_temporaries": round(step_temp / GB, 3),
        "block_activations": round(block_acts / GB, 3), "logits": round(logits / GB, 3),
        "other_activations": round((final_norm + prefix_kv + head_grad) / GB, 3),
        "peak_of_activations_or_gradients": round(dynamic_gb, 3),
    }
    if cfg.strategy is not None and cfg.processes > 1:
        detail.update(ddp_gradient_buckets=round(ddp_buckets / GB, 3), gathered_blocks=round(gathered / GB, 3))
    # the device-specific terms: only those of this device are shown
    if cfg.device == "cpu":
        detail.update(cpu_heap_retention=round(heap / GB, 3), cpu_runtime_overhead=round(runtime / GB, 3),
                      cpu_process_baseline=round(baseline / GB, 3), encoded_data=round(data / GB, 3))
    else:
        detail.update(cuda_context=round(context / GB, 3), allocator_slack=round(slack / GB, 3))
    error, basis = k.estimate_error[cfg.device]
    return MemoryEstimate(round(total / GB, 2), breakdown, detail, n_train, profile.total_params, assumptions,
                          total_bytes=total, relative_error=error, error_basis=basis)


def _cpu_heap_retention(profile: ModelProfile, cfg: EstimateConfig, tokens: int, saving_layers: int) -> float:
    """RAM that glibc's heap keeps after activations are freed (CPU only), in bytes.

    Freed blocks below the dynamic mmap threshold (at most 32 MiB) stay in the heap for reuse, so the resident
    peak exceeds the live tensors. Measured per method, in fp32 (hidden + ffn) vectors per token and block; only
    the per-token tensors small enough to live in the heap count (see estimator.yaml cpu_heap_retention).
    """
    k = load_estimator_constants()
    per_method = k.cpu_heap_retention
    vectors = per_method.get(cfg.method, per_method["default"])
    limit = k.cpu_heap_max_block_mb * 2**20
    width = sum(w for w in (profile.hidden_size, profile.ffn_size) if tokens * w * 4 < limit)
    element = 2 if cfg.cpu_bf16 else 4  # the retained blocks are activations: bf16 under autocast
    return vectors * saving_layers * tokens * width * element


def linear_flops_per_token(profile: ModelProfile) -> float:
    """FLOPs of the linear layers and the head for one token's forward pass (a mixture of experts: the experts
    each token is routed to)."""
    mlp_kinds = ("gate", "up", "gate_up", "down")
    active_block = sum(fin * fout * (profile.experts_per_token if kind in mlp_kinds else 1)
                       for _, kind, fin, fout in profile.unique_modules())
    return float(2 * (profile.num_layers * active_block + profile.vocab_size * profile.hidden_size))


def compute_rate(cfg: EstimateConfig, *, device_name: str | None = None, cpu_cores: int | None = None,
                 cpu_vector: str | None = None, cpu_ghz: float | None = None) -> tuple[float, str, str]:
    """The FLOP/s a run achieves (the device's peak x utilisation, x processes when distributed); where it runs,
    in a few words; and how the rate was found."""
    k = load_estimator_constants()
    if cfg.device == "cpu":
        cores = cpu_cores or 1
        per_cycle = k.cpu_flops_per_cycle.get(cpu_vector or "default", k.cpu_flops_per_cycle["default"])
        ghz = cpu_ghz or k.cpu_default_ghz
        effective_cores = 1 + (cores - 1) * k.cpu_extra_core_efficiency  # threads scale below linearly
        rate = effective_cores * per_cycle * ghz * 1e9 * k.mfu["cpu"] * (k.cpu_bf16_speedup if cfg.cpu_bf16 else 1)
        on = f"{cores} CPU core{'s' if cores != 1 else ''}" + (" in bf16" if cfg.cpu_bf16 else "")
        where = (f"{cores} CPU core(s) ({effective_cores:g} effective) x {per_cycle * ghz:g} GFLOP/s peak "
                 f"({cpu_vector or 'unknown SIMD'} at "
                 f"{ghz:g} GHz{'' if cpu_ghz else ', assumed'}) x {k.mfu['cpu']:.0%} utilisation"
                 + (f" x {k.cpu_bf16_speedup:g} for bf16 (autocast on the CPU's bf16 units)" if cfg.cpu_bf16 else ""))
    else:
        peak, known = k.gpu_peak_tflops(device_name or "")
        rate = peak * 1e12 * k.mfu[cfg.device if cfg.device in k.mfu else "cuda"]
        on = f"one {device_name or 'GPU'}"
        where = (f"{device_name or 'GPU'}: {peak:g} TFLOP/s 16-bit peak"
                 f"{'' if known else ' (unknown GPU: a conservative default)'} x {k.mfu['cuda']:.0%} utilisation")
    if cfg.strategy is not None and cfg.processes > 1:
        efficiency = load_distributed().efficiency(cfg.strategy, cfg.machines)
        rate *= cfg.processes * efficiency
        where += f", x {cfg.processes} processes at {efficiency:.0%} scaling ({cfg.strategy})"
        on += f" x {cfg.processes} processes"
    return rate, on, where


def estimate_evaluation(profile: ModelProfile, method: str, device: str, *, examples: int, prompt_tokens: float,
                        max_new_tokens: int, general_texts: int, general_tokens: int, speed: bool,
                        base_measured: bool = True, device_name: str | None = None, cpu_cores: int | None = None,
                        cpu_vector: str | None = None, cpu_ghz: float | None = None) -> EvaluationEstimate:
    """The time runner/evaluate.py takes after training: each model the comparison needs (the base and the
    tuned model; QLoRA also its 4-bit base) generates greedily for the `examples` test prompts, in batches of
    GEN_BATCH, up to `max_new_tokens` each (a batch runs until its longest answer ends: the bound is taken), and
    scores the general-text passages; then the speed timing, when it is on. Each forward call costs its FLOPs at
    the training rate, a fixed time per layer, and the time to read the weights once (knowledge/estimator.yaml
    `evaluation`). Evaluation runs in one process, in fp32 on the CPU and in 16-bit on a GPU. `base_measured`
    False: the base's outputs and losses come from an earlier run on the same examples (a pilot's candidates
    after the first), so only the speed timing may load the base."""
    k = load_estimator_constants()
    e = k.evaluation
    card = method_card(method)
    single = EstimateConfig(method=method, device=device)  # one process, no bf16 autocast
    rate, on, _ = compute_rate(single, device_name=device_name, cpu_cores=cpu_cores, cpu_vector=cpu_vector,
                               cpu_ghz=cpu_ghz)
    weights_gb = profile.total_params * _inference_bytes(device) / GB
    layers = e.layer_call_ms[device] * 1e-3 * profile.num_layers
    if device == "cpu":  # a generation step (batch 8, the KV cache read too) and a passage read apart
        step = layers + weights_gb * e.cpu_seconds_per_gb["generation_step"]
        passage = layers + weights_gb * e.cpu_seconds_per_gb["passage"]
    else:
        step = passage = layers + weights_gb / (k.gpu_bandwidth(device_name or "")[0] * 1e3)  # TB/s: s per GB
    flops = linear_flops_per_token(profile) / rate  # seconds per token
    factors = e.method_call_factor["cpu" if device == "cpu" else "cuda"]
    tuned = factors.get(method, 1.0)
    quantized = e.quantized_base_call_factor["cpu" if device == "cpu" else "cuda"]
    variants = ({"base": 1.0} if base_measured else {}) | {"tuned": tuned} | (
        {"base_quantized": quantized} if card.quantized else {})
    batches = math.ceil(examples / GEN_BATCH)
    one_generation = batches * max_new_tokens * step + examples * (prompt_tokens + max_new_tokens) * flops
    one_general = general_texts * passage + general_tokens * flops
    generation = sum(f * one_generation for f in variants.values())
    general = sum(f * one_general for f in variants.values())
    timed_calls = SPEED_ROUNDS * SPEED_TOKENS + 2  # the rounds, after a warm-up of 2 tokens
    timed_tokens = SPEED_PROMPTS * (prompt_tokens + SPEED_TOKENS) * (SPEED_ROUNDS + 1)
    if not speed:
        timed = {}
    elif card.full_model:
        timed = {"base": 1.0, "tuned": 1.0}
    elif card.quantized:
        timed = {"base": 1.0, "base_quantized": quantized, "tuned": tuned} | (
            {"tuned_merged": 1.0} if card.mergeable else {})
    else:
        timed = {"base": 1.0, "tuned": tuned} | ({"tuned_merged": 1.0} if card.mergeable else {})
    timing = sum(f * (timed_calls * step + timed_tokens * flops) for f in timed.values())
    base_loaded = base_measured or bool(timed) and (card.full_model or (card.quantized and card.mergeable))
    loading = e.fixed_seconds + e.load_seconds_per_gb * weights_gb * (
        (1 if base_loaded else 0) + (1 if not card.quantized else 1.5))
    parts = {"loading": loading, "generation": generation, "general_text": general, "speed": timing}
    seconds = sum(parts.values())
    models = ["the base"] if base_measured else []
    models += ["its 4-bit form", "the tuned model"] if card.quantized else ["the tuned model"]
    verb, score = ("each generate", "score") if len(models) > 1 else ("generates", "scores")
    basis = (f"{duration(seconds / 3600)}: {' and '.join(models)} {verb} for {examples} test examples (at most "
             f"{max_new_tokens} new tokens each) and {score} {general_texts} general-text passages"
             + (", then generation speed is timed" if timed else "")
             + ("" if base_measured else " (the base's outputs measured for an earlier run)") + f", on {on}")
    return EvaluationEstimate(seconds, basis, parts)


def run_start_seconds(profile: ModelProfile, device: str) -> float:
    """A run's own cost beyond its training and evaluation: the worker starting, the data split, the model loaded
    for training and saved (knowledge/estimator.yaml run_start_seconds)."""
    k = load_estimator_constants()
    return k.run_start_seconds + k.evaluation.load_seconds_per_gb * profile.total_params * _inference_bytes(
        device) / GB


def _inference_bytes(device: str) -> int:
    """Bytes a weight of the unquantized base as evaluation loads it: fp32 on the CPU and MPS, 16-bit on CUDA
    (runner/model.py compute_dtype_name)."""
    return 2 if device == "cuda" else 4


def estimate_time(profile: ModelProfile, cfg: EstimateConfig, *, tokens: int, trained_tokens: int | None = None,
                  eval_tokens: int = 0, steps: int = 0, optimizer_steps: int = 0,
                  attention_length: float | None = None,
                  device_name: str | None = None, cpu_cores: int | None = None, cpu_vector: str | None = None,
                  cpu_ghz: float | None = None) -> TimeEstimate:
    """Training time for `tokens` computed (examples x epochs x tokens per example, padding included) on the
    given device. `trained_tokens` (default: `tokens`) are the examples' own, for the tokens/s stated;
    `eval_tokens` the validation evaluations' (forward only); `steps` the forward passes (training
    micro-batches and validation batches), a fixed cost each on the CPU; `optimizer_steps` the optimizer's
    updates, a cost per trained parameter on the CPU (memory-bound); `attention_length` the mean length of
    the rows attention runs over (a packed row: its examples together; padded: the batch's longest), when the
    data's lengths are known: such rows carry a mask, and attention computes the whole masked square."""
    _check(profile, cfg)
    k = load_estimator_constants()
    m = cfg.method
    seq = cfg.seq_len + (cfg.num_virtual_tokens if method_card(m).input_prompts else 0)
    head = profile.vocab_size * profile.hidden_size
    w_fwd = linear_flops_per_token(profile)
    if attention_length is not None:  # QK^T and AV over the whole masked square of each row
        att_fwd: float = 4 * profile.num_layers * attention_length * profile.q_dim
    else:  # rows of max_length, causal (half the square)
        att_fwd = 2 * profile.num_layers * seq * profile.q_dim
    fwd = w_fwd + att_fwd
    if m == "full":
        bwd = 2 * w_fwd + 2 * att_fwd                               # input and weight gradients
    elif m == "freeze":
        share = cfg.freeze_trainable_layers / profile.num_layers
        bwd = 2 * (w_fwd - 2 * head) * share + 2 * head + 2 * att_fwd * share
    else:
        bwd = w_fwd + 2 * att_fwd                                   # input gradients only; adapters are tiny
    per_token = fwd + bwd + (fwd if cfg.gradient_checkpointing else 0)
    flops = per_token * tokens + fwd * eval_tokens
    factor = k.method_speed_factor["cpu" if cfg.device == "cpu" else "cuda"].get(m, 1.0)
    rate, on, where = compute_rate(cfg, device_name=device_name, cpu_cores=cpu_cores, cpu_vector=cpu_vector,
                                   cpu_ghz=cpu_ghz)
    trained_params = trainable_params(profile, cfg)
    step_cost = (k.cpu_step_overhead_s * steps + k.cpu_update_ns_per_param * 1e-9 * optimizer_steps * trained_params) \
        if cfg.device == "cpu" else 0.0
    seconds = flops / rate * factor + step_cost
    formula = (f"{tokens:,} tokens x {per_token / 1e9:.2f} GFLOP per token "
               f"({'forward + backward' + (' + recompute' if cfg.gradient_checkpointing else '')})"
               + (f" + {eval_tokens:,} validation tokens x {fwd / 1e9:.2f} GFLOP (forward)" if eval_tokens else "")
               + f" on {where}" + (f", x{factor:g} for {m}" if factor != 1 else "")
               + (f", + {steps:,} forward passes x {k.cpu_step_overhead_s:g} s and {optimizer_steps:,} updates x "
                  f"{trained_params:,} parameters x {k.cpu_update_ns_per_param:g} ns (fixed costs on "
                  "the CPU)" if step_cost else "")
               + TRAINING_ONLY)
    trained = int(tokens if trained_tokens is None else trained_tokens)
    hours = round(seconds / 3600, 3 if seconds < 36 else 2)
    basis = (f"{duration(hours)}: {trained:,} tokens at about {trained / max(seconds, 1e-9):,.0f} tokens/s on {on}"
             + (f" (padding makes it {tokens:,} computed)" if tokens > trained * 1.05 else "")
             + (", validation included" if eval_tokens else "") + TRAINING_ONLY)
    return TimeEstimate(hours, int(tokens), flops, rate / factor, basis, formula, trained, seconds)
