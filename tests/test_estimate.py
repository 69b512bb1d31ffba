"""The estimator on hand-computed cases, on published configurations, and its monotone properties."""

from __future__ import annotations

from typing import Any

import pytest

from advisor.estimate import EstimateConfig, estimate_evaluation, estimate_memory, estimate_time, trainable_params
from advisor.model_profile import ModelProfile, profile_from_config, profile_model
from knowledge import load_estimator_constants
from knowledge.errors import InputError
from tests.conftest import TINY_LLAMA

# TINY_LLAMA: h=64, 4 heads x 16 (q width 64), 2 KV heads (kv width 32), ffn 128, 2 blocks, vocab 100, untied.
BLOCK = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128  # 36864 linear weights per block
TOTAL = 2 * (BLOCK + 2 * 64) + 2 * 100 * 64 + 64       # 86848


@pytest.fixture(scope="module")
def tiny() -> ModelProfile:
    return profile_from_config(TINY_LLAMA, name="tiny", source="folder")


def test_tiny_total(tiny: ModelProfile) -> None:
    assert tiny.total_params == TOTAL


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        (EstimateConfig("full"), TOTAL),
        (EstimateConfig("freeze", freeze_trainable_layers=1), BLOCK + 2 * 64),
        (EstimateConfig("lora", lora_rank=8, lora_targets="q_proj,v_proj"), 2 * (8 * (64 + 64) + 8 * (64 + 32))),
        (EstimateConfig("dora", lora_rank=8, lora_targets="q_proj,v_proj"),
         2 * (8 * (64 + 64) + 64 + 8 * (64 + 32) + 32)),                       # + one magnitude per output
        (EstimateConfig("qlora", lora_rank=4), 2 * 4 * (3 * 64 + 64 + 2 * 32 + 64 + 64 + 2 * (64 + 128)
                                                        + (128 + 64))),      # all seven linears
        (EstimateConfig("p_tuning_v2", num_virtual_tokens=10), 10 * 2 * 2 * 32),  # tokens x layers x K/V x kv width
        (EstimateConfig("prefix", num_virtual_tokens=10),                         # MLP with mid width 512 (card)
         10 * 32 + (32 * 512 + 512) + (512 * 2 * 2 * 32 + 2 * 2 * 32)),
        (EstimateConfig("prompt_tuning", num_virtual_tokens=10), 10 * 64),
        (EstimateConfig("p_tuning", num_virtual_tokens=10), 10 * 64 + 3 * (64 * 64 + 64)),
        (EstimateConfig("ia3"), 2 * (2 * 32 + 128)),
    ],
    ids=lambda v: v.method if isinstance(v, EstimateConfig) else str(v),
)
def test_trainable_parameters_by_method(tiny: ModelProfile, cfg: EstimateConfig, expected: int) -> None:
    assert trainable_params(tiny, cfg) == expected


def test_lora_on_the_cpu_hand_computed(tiny: ModelProfile) -> None:
    cfg = EstimateConfig("lora", batch_size=2, seq_len=10, lora_rank=8, lora_targets="q_proj,v_proj", device="cpu")
    est = estimate_memory(tiny, cfg)
    tokens, n_train = 20, 3584
    per_block = (2 * 4 * 64          # two RMSNorms keep an fp32 copy of their input
                 + 4 * 4 * 64         # SDPA keeps q, k, v (expanded) and the output, fp32
                 + 4 * 64             # q_proj and v_proj LoRA read the same fp32 input: one tensor kept
                 + 3 * 4 * 128)       # gated MLP: gate, activation, up
    activations = tokens * 2 * per_block + tokens * 4 * 64 + tokens * 100 * 12
    # glibc heap retention: 4.7 fp32 (hidden + ffn) vectors per token and block (knowledge/estimator.yaml)
    heap = 4.7 * 2 * tokens * (64 + 128) * 4
    runtime = 0.05e9  # CPU runtime overhead (Trainer state, malloc arenas)
    baseline = 0.53e9  # the process before the model loads: python, torch, transformers, peft
    expected = TOTAL * 4 + n_train * 4 + n_train * 8 + activations + heap + runtime + baseline  # + adapter, AdamW
    assert est.total_bytes == pytest.approx(expected)
    assert est.detail["cpu_heap_retention"] == round(heap / 1e9, 3) and "cuda_context" not in est.detail


def test_the_cpu_heap_term_counts_only_tensors_glibc_keeps_in_its_heap() -> None:
    """Per-token tensors of 32 MiB or more are mmapped and returned on free: they leave no heap retention."""
    from advisor.model_profile import profile_from_config

    wide = profile_from_config({"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 2,
                                "num_attention_heads": 16, "num_key_value_heads": 16, "intermediate_size": 8192,
                                "vocab_size": 1000}, name="wide", source="folder")
    def heap(batch: int, seq: int) -> float:
        cfg = EstimateConfig("lora", batch_size=batch, seq_len=seq, device="cpu")
        return estimate_memory(wide, cfg).detail["cpu_heap_retention"]

    small = heap(1, 512)            # 512 tokens: 4 MB hidden and 16 MB ffn tensors, both in the heap
    assert small == pytest.approx(4.7 * 2 * 512 * (2048 + 8192) * 4 / 1e9, abs=1e-3)
    assert heap(1, 2048) == pytest.approx(4.7 * 2 * 2048 * 2048 * 4 / 1e9, abs=1e-3)  # 64 MB ffn tensors: mmapped
    assert heap(8, 2048) == 0.0    # every per-token tensor is over 32 MiB


def test_lora_on_cuda_adds_the_cast_copies_context_and_slack(tiny: ModelProfile) -> None:
    cpu = EstimateConfig("lora", batch_size=2, seq_len=10, lora_rank=8, lora_targets="q_proj,v_proj", device="cpu")
    cuda = EstimateConfig("lora", batch_size=2, seq_len=10, lora_rank=8, lora_targets="q_proj,v_proj", device="cuda")
    est = estimate_memory(tiny, cuda)
    per_block = 2 * 4 * 64 + 4 * 2 * 64 + 2 * 2 * 64 + 3 * 2 * 128  # bf16, one cast copy per LoRA module
    activations = 20 * 2 * per_block + 20 * 4 * 64 + 20 * 100 * 12
    # adapter weights (4) + AdamW (8); its gradients (4) fit inside the activations' peak, not on top
    expected = TOTAL * 2 + 3584 * 12 + activations * 1.05 + 0.5e9
    assert est.total_bytes == pytest.approx(expected)
    on_cpu = estimate_memory(tiny, cpu)
    assert on_cpu.total_bytes - on_cpu.detail["cpu_process_baseline"] * 1e9 < est.total_bytes


def test_four_bit_weights_hand_computed(tiny: ModelProfile) -> None:
    quantized = 2 * BLOCK
    per_weight = 0.5 + 1 / 64 + 4 / (64 * 256)  # NF4 + double-quantized absmax
    est = estimate_memory(tiny, EstimateConfig("qlora", device="cuda"))
    assert est.detail["weights_quantized_or_blocks"] == round(quantized * per_weight / 1e9, 3)
    plain = estimate_memory(tiny, EstimateConfig("qlora", device="cuda", double_quant=False))
    assert plain.total_bytes - est.total_bytes == pytest.approx(quantized * (4 / 64 - (1 / 64 + 4 / (64 * 256))))


def test_breakdown_adds_up(tiny: ModelProfile) -> None:
    for method in ("full", "lora", "qlora", "prefix", "freeze"):
        est = estimate_memory(profile_model("meta-llama/Llama-3.2-1B-Instruct"), EstimateConfig(method, batch_size=2))
        assert sum(est.breakdown.values()) == pytest.approx(est.estimated_gb, abs=0.02)


def test_published_llama_3b_configurations() -> None:
    """Llama-3.2-3B, batch 4 x 768, no checkpointing: LoRA r32 on q,v about 20 GB; full bf16 about 37 GB."""
    model = profile_model("meta-llama/Llama-3.2-3B-Instruct")
    lora = estimate_memory(model, EstimateConfig("lora", batch_size=4, seq_len=768, lora_rank=32,
                                                 lora_targets="q_proj,v_proj"))
    full = estimate_memory(model, EstimateConfig("full", batch_size=4, seq_len=768, bits=16))
    assert 20 * 0.85 <= lora.estimated_gb <= 20 * 1.15
    assert 37 * 0.9 <= full.estimated_gb <= 37 * 1.1


def test_monotone_in_the_settings_that_should_cost_memory() -> None:
    model = profile_model("Qwen/Qwen2.5-1.5B-Instruct")

    def gb(**kw: object) -> float:
        return estimate_memory(model, EstimateConfig(**{"method": "lora", **kw})).estimated_gb  # type: ignore[arg-type]

    assert gb(batch_size=1) < gb(batch_size=2) < gb(batch_size=8)
    assert gb(seq_len=512) < gb(seq_len=2048)
    assert gb(gradient_checkpointing=True, batch_size=8) < gb(batch_size=8)
    assert gb(method="qlora", bits=4) < gb(method="qlora", bits=8)
    # QLoRA saves weight memory but keeps fp32 activations (peft's kbit preparation): with checkpointing, as it
    # is recommended, it is below LoRA; without, on a small model, it need not be (bitsandbytes issue #1569)
    assert gb(method="qlora", bits=8, gradient_checkpointing=True) < gb(gradient_checkpointing=True)
    assert gb(lora_rank=8) < gb(lora_rank=64)
    assert gb(method="full", optimizer="adamw_8bit") < gb(method="full", optimizer="adamw")
    assert gb(method="full", optimizer="sgd") < gb(method="full", optimizer="adamw_8bit")


def test_prompt_methods_lengthen_the_sequence() -> None:
    model = profile_model("Qwen/Qwen2.5-0.5B-Instruct")
    short = estimate_memory(model, EstimateConfig("prompt_tuning", num_virtual_tokens=8))
    long = estimate_memory(model, EstimateConfig("prompt_tuning", num_virtual_tokens=128))
    assert long.detail["logits"] / short.detail["logits"] == pytest.approx((1024 + 128) / (1024 + 8), rel=1e-2)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (EstimateConfig("prefix", gradient_checkpointing=True), "cannot be trained with gradient checkpointing"),
        (EstimateConfig("p_tuning_v2", gradient_checkpointing=True), "cannot be trained with gradient checkpointing"),
        (EstimateConfig("lora", lora_targets="q_proj,query"), "no module named query"),
        (EstimateConfig("qlora", bits=16), "4 or 8 bits"),
        (EstimateConfig("full", bits=4), "cannot train quantized"),
        (EstimateConfig("freeze", freeze_trainable_layers=3), "has 2 blocks"),
        (EstimateConfig("lora", optimizer="lion"), "unknown optimizer"),
        (EstimateConfig("lora", batch_size=0), "at least 1"),
    ],
)
def test_impossible_configurations_are_input_errors(tiny: ModelProfile, cfg: EstimateConfig, message: str) -> None:
    with pytest.raises(InputError, match=message):
        estimate_memory(tiny, cfg)


def test_time_hand_computed(tiny: ModelProfile) -> None:
    seq = 10
    w_fwd = 2 * (2 * BLOCK + 100 * 64)      # every linear of both blocks + the head
    att = 2 * 2 * seq * 64                   # QK^T and AV over a causal half square
    full = estimate_time(tiny, EstimateConfig("full", seq_len=seq, device="cpu"), tokens=1000, cpu_cores=1)
    assert full.flops == 1000 * ((w_fwd + att) + 2 * (w_fwd + att))
    # an unknown CPU: 16 FLOP a cycle at an assumed 2.5 GHz, at the measured 63% utilisation
    assert full.flops_per_s == pytest.approx(16 * 2.5e9 * 0.63) and "assumed" in full.formula
    lora = estimate_time(tiny, EstimateConfig("lora", seq_len=seq, device="cpu"), tokens=1000, cpu_cores=1)
    assert lora.flops == 1000 * ((w_fwd + att) + (w_fwd + 2 * att))     # no weight gradients for frozen weights
    # AVX-512 at 2.3 GHz: 64 FLOP a cycle; LoRA's measured CPU factor (1.25) slows it against full
    avx = estimate_time(tiny, EstimateConfig("lora", seq_len=seq, device="cpu"), tokens=1000, cpu_cores=2,
                        cpu_vector="avx512", cpu_ghz=2.3)
    # two cores count as 1.75: each core beyond the first adds the measured 75%
    assert avx.flops_per_s == pytest.approx(1.75 * 64 * 2.3e9 * 0.63 / 1.25) and "avx512 at 2.3 GHz" in avx.formula
    gc = estimate_time(tiny, EstimateConfig("lora", seq_len=seq, device="cpu", gradient_checkpointing=True),
                       tokens=1000, cpu_cores=1)
    assert gc.flops == lora.flops + 1000 * (w_fwd + att)                # one more forward


def test_time_on_a_known_and_an_unknown_gpu() -> None:
    model = profile_model("meta-llama/Llama-3.1-8B-Instruct")
    cfg = EstimateConfig("lora", seq_len=1024)
    a100 = estimate_time(model, cfg, tokens=10_000_000, device_name="NVIDIA A100-SXM4-80GB")
    unknown = estimate_time(model, cfg, tokens=10_000_000, device_name="Mystery GPU 9000")
    assert a100.flops_per_s == pytest.approx(312e12 * 0.35)
    assert "unknown GPU" in unknown.formula and unknown.estimated_hours > a100.estimated_hours
    qlora = estimate_time(model, EstimateConfig("qlora", seq_len=1024), tokens=10_000_000,
                          device_name="NVIDIA A100-SXM4-80GB")
    assert qlora.estimated_hours == pytest.approx(a100.estimated_hours * 1.4, rel=0.01)


@pytest.mark.parametrize(("tokens", "published_gb"), [(932, 12), (5789, 24), (12264, 40), (28454, 80)])
def test_qlora_on_cuda_matches_published_context_limits(tokens: int, published_gb: float) -> None:
    """Unsloth's published Hugging Face + Flash Attention 2 baseline: the longest context QLoRA (r32, all linear
    layers, checkpointing, 8-bit AdamW) trains Llama-3.1-8B in on a 12/24/40/80 GB GPU
    (docs.unsloth.ai/basics/unsloth-benchmarks). Without peft's fp32 activations under QLoRA the estimate
    came out 10-13% low."""
    model = profile_model("meta-llama/Llama-3.1-8B-Instruct")
    est = estimate_memory(model, EstimateConfig("qlora", batch_size=1, seq_len=tokens, lora_rank=32,
                                                gradient_checkpointing=True, optimizer="adamw_8bit", device="cuda"))
    assert est.estimated_gb == pytest.approx(published_gb, rel=0.10)


def test_cpu_time_counts_validation_fixed_costs_and_masked_attention(tiny: ModelProfile) -> None:
    """Beyond the FLOPs of training: the validation forward passes, a fixed cost per forward pass, a cost per
    trained parameter and update (knowledge/estimator.yaml, fitted on real-model runs), and with the data's
    lengths the whole masked square of each row."""
    cfg = EstimateConfig("full", seq_len=10, device="cpu")
    plain = estimate_time(tiny, cfg, tokens=1000, cpu_cores=1)
    fwd = plain.flops / 1000 / 3  # full fine-tuning: forward + backward = 3 forwards
    with_eval = estimate_time(tiny, cfg, tokens=1000, eval_tokens=300, cpu_cores=1)
    assert with_eval.flops == pytest.approx(plain.flops + 300 * fwd)
    fixed = estimate_time(tiny, cfg, tokens=1000, steps=10, optimizer_steps=5, cpu_cores=1)
    assert fixed.seconds == pytest.approx(plain.seconds + 10 * 0.144 + 5 * TOTAL * 8e-9)
    masked = estimate_time(tiny, cfg, tokens=1000, attention_length=10, cpu_cores=1)
    assert masked.flops - plain.flops == pytest.approx(1000 * 3 * 2 * 2 * 10 * 64)  # twice the causal half-square
    gpu = estimate_time(tiny, EstimateConfig("full", seq_len=10), tokens=1000, steps=10, optimizer_steps=5)
    assert gpu.seconds == pytest.approx(estimate_time(tiny, EstimateConfig("full", seq_len=10), tokens=1000).seconds)


def test_bf16_on_the_cpu_halves_the_activations_and_speeds_the_estimate(tiny: ModelProfile) -> None:
    """Autocast on a CPU with bf16 units: weights stay fp32, activations are bf16, the step is faster by the
    measured factor (knowledge/estimator.yaml cpu_bf16_speedup)."""
    fp32 = EstimateConfig("lora", batch_size=8, seq_len=64, device="cpu")
    bf16 = EstimateConfig("lora", batch_size=8, seq_len=64, device="cpu", cpu_bf16=True)
    a, b = estimate_memory(tiny, fp32), estimate_memory(tiny, bf16)
    assert a.detail["weights_unquantized"] + a.detail["weights_quantized_or_blocks"] == \
        b.detail["weights_unquantized"] + b.detail["weights_quantized_or_blocks"]
    assert b.detail["block_activations"] < a.detail["block_activations"]
    ta = estimate_time(tiny, fp32, tokens=10_000, cpu_cores=2)
    tb = estimate_time(tiny, bf16, tokens=10_000, cpu_cores=2)
    assert tb.flops_per_s == pytest.approx(ta.flops_per_s * 1.8) and "in bf16" in tb.basis


def test_evaluation_time_hand_computed(tiny: ModelProfile) -> None:
    """Evaluation after training: each model the comparison needs generates for the test prompts in batches of 8,
    a batch running to max_new_tokens, and scores the general-text passages. Each forward call costs its FLOPs
    at the training rate, a time per layer and the time to read the fp32 weights once (the CPU)."""
    k = load_estimator_constants().evaluation
    rate = 16 * 2.5e9 * 0.63  # an unknown CPU, one core
    step = k.layer_call_ms["cpu"] * 1e-3 * 2 + TOTAL * 4 / 1e9 * k.cpu_seconds_per_gb["generation_step"]
    passage = k.layer_call_ms["cpu"] * 1e-3 * 2 + TOTAL * 4 / 1e9 * k.cpu_seconds_per_gb["passage"]
    per_token = 2 * (2 * BLOCK + 100 * 64) / rate
    shared: dict[str, Any] = {"prompt_tokens": 20, "max_new_tokens": 30, "general_texts": 200, "general_tokens": 6000,
                              "cpu_cores": 1}
    lora = estimate_evaluation(tiny, "lora", "cpu", examples=12, speed=False, **shared)
    one_generation = 2 * 30 * step + 12 * (20 + 30) * per_token  # 12 prompts: 2 batches of 8, 30 steps each
    one_general = 200 * passage + 6000 * per_token
    factor = k.method_call_factor["cpu"]
    assert lora.parts["generation"] == pytest.approx(one_generation * (1 + factor.get("lora", 1.0)))
    assert lora.parts["general_text"] == pytest.approx(one_general * (1 + factor.get("lora", 1.0)))
    assert lora.parts["speed"] == 0 and "speed" not in lora.basis
    assert "the base and the tuned model each generate for 12 test examples (at most 30 new tokens" in lora.basis
    assert lora.seconds == pytest.approx(sum(lora.parts.values()))
    # QLoRA compares with the 4-bit base it trained on too: a third model generates and scores
    qlora = estimate_evaluation(tiny, "qlora", "cpu", examples=12, speed=False, **shared)
    four_bit = k.quantized_base_call_factor["cpu"]
    assert qlora.parts["generation"] == pytest.approx(one_generation * (1 + four_bit + factor["qlora"]))
    assert "its 4-bit form" in qlora.basis
    # a batch more of test prompts is 30 more calls a model; the general text does not change
    more = estimate_evaluation(tiny, "lora", "cpu", examples=20, speed=False, **shared)
    assert more.parts["generation"] > lora.parts["generation"] and more.parts["general_text"] == lora.parts[
        "general_text"]
    # a pilot's later candidates read the base's measurements back: only the tuned model generates and scores
    later = estimate_evaluation(tiny, "lora", "cpu", examples=12, speed=False, base_measured=False, **shared)
    assert later.parts["generation"] == pytest.approx(one_generation * factor.get("lora", 1.0))
    assert later.parts["loading"] < lora.parts["loading"]
    assert "the tuned model generates for 12 test examples" in later.basis and "for an earlier run" in later.basis
    timed = estimate_evaluation(tiny, "lora", "cpu", examples=12, speed=True, **shared)
    assert timed.parts["speed"] > 0 and "generation speed is timed" in timed.basis


def test_evaluation_on_a_gpu_reads_the_weights_at_its_memory_bandwidth() -> None:
    model = profile_model("meta-llama/Llama-3.1-8B-Instruct")
    args: dict[str, Any] = {"examples": 200, "prompt_tokens": 100, "max_new_tokens": 128, "general_texts": 200,
            "general_tokens": 7000, "speed": True}
    h100 = estimate_evaluation(model, "lora", "cuda", device_name="NVIDIA H100 80GB HBM3", **args)
    t4 = estimate_evaluation(model, "lora", "cuda", device_name="Tesla T4", **args)
    # 16 GB of bf16 weights a call: 4.8 ms at 3.35 TB/s, 50 ms at 0.32 TB/s; the layers' fixed time is the same
    assert t4.parts["generation"] / h100.parts["generation"] == pytest.approx(5.7, rel=0.15)
    assert "one Tesla T4" in t4.basis
