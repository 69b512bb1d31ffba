"""Loading the base model and tokenizer: device (CUDA > MPS > CPU), dtype, quantization for QLoRA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from knowledge.errors import InputError
from runner.plan import Plan
from runner.rundir import RunDir

__all__ = ["causal_lm_support", "compute_dtype_name", "load_model", "load_tokenizer", "load_trained", "select_device"]


def select_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def causal_lm_support(model_type: str) -> str | None:
    """Why this transformers cannot train `model_type` as a causal language model, or None when it can. Reads
    transformers' registries (importing them takes about 3 s, so callers ask only for model types that
    knowledge/architectures.yaml does not list)."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES  # type: ignore[attr-defined]
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if model_type not in CONFIG_MAPPING_NAMES:
        return f"transformers {transformers.__version__} does not know model_type {model_type!r}"
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return f"model_type {model_type!r} is not a causal language model (no AutoModelForCausalLM class)"
    return None


def compute_dtype_name(device: str, precision: str | None = None) -> str:
    """The dtype training computes in. CUDA: bf16 where the GPU supports it, else fp16 (fp32 when the plan says
    so). The CPU: bf16 when the plan says so (the recommendation chooses it where the CPU has bf16 units: the
    Trainer's autocast, weights kept in fp32), else fp32. MPS: fp32."""
    import torch

    if device == "cuda":
        if precision == "fp32":
            return "float32"
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device == "cpu" and precision == "bf16":
        return "bfloat16"
    return "float32"


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load the tokenizer: {str(exc).splitlines()[0]}", file=name_or_path) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    return tokenizer


def _keep_4bit_layout(model: Any) -> None:
    """Keep bitsandbytes' 4-bit layers on their one, trainable layout on the CPU.

    bitsandbytes 0.49.0 (PR #1804, "Cpu fused kernel") makes Linear4bit.forward, on CPUs with AVX512-BF16, repack
    its weight in place for a fused bf16 kernel the first time it runs in eval mode without gradients, as the
    Trainer's evaluation does. Three things then break (all seen with 0.49.2 and 0.50.2): the repacking reshapes
    the block scales to [out, in // 64] and raises "shape '[128, 5]' is invalid for input of size 704" for any
    layer whose in_features is not a multiple of the 64-element block; back in training, the packed weight goes
    through bitsandbytes::gemv_4bit, which has no autograd kernel, so gradients through the frozen base are
    dropped (torch warns "an autograd kernel was not registered"); and state_dict() (every checkpoint) undoes the
    packing with a lossy "best-effort inverse" (scales rounded to bf16, double quantization redone), so the base
    drifts from what a reload gives. The flag below is the one that forward() checks; without it every step,
    evaluation included, dequantizes and multiplies in the compute dtype, as on 0.48 and on CUDA.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def load_model(name_or_path: str, *, device: str, method: str, bits: int | None, trust_remote_code: bool = False,
               gradient_checkpointing: bool = False) -> Any:
    """The base model, on `device`, quantized for QLoRA (4-bit NF4 with double quantization, or 8-bit)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = getattr(torch, compute_dtype_name(device))
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    if Path(name_or_path).is_dir():
        kwargs["use_safetensors"] = True
    if method == "qlora":
        if bits == 8:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=dtype)
        # the process's own GPU (torch.cuda.set_device(LOCAL_RANK) under accelerate launch), else GPU 0
        kwargs["device_map"] = {"": torch.cuda.current_device()} if device == "cuda" else {"": device}
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load the model: {str(exc).splitlines()[0]}", file=name_or_path) from None
    if method == "qlora":
        from peft import prepare_model_for_kbit_training

        _keep_4bit_layout(model)
        # its default turns gradient checkpointing on; the plan decides (prefix methods never take it)
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.to(device)
    return model


def load_trained(run: RunDir, plan: Plan, *, device: str) -> Any:
    """The run's trained model for inference, in eval mode: the whole model (full, freeze), or the base (4-bit for
    QLoRA, as it trained) with the adapter; soft-prompt adapters generate with their prompts."""
    card = plan.card
    if card.full_model:
        from transformers import AutoModelForCausalLM

        model: Any = AutoModelForCausalLM.from_pretrained(str(run.model),
                                                          trust_remote_code=plan.model.trust_remote_code)
        model = model.to(device)
    else:
        from peft import PeftModel

        base = load_model(plan.model.name_or_path, device=device, method=plan.method,
                          bits=plan.hyperparameters.get("bits"), trust_remote_code=plan.model.trust_remote_code)
        model = PeftModel.from_pretrained(base, str(run.adapter))
        if card.virtual_tokens:
            generate_with_prompts(model)
    return model.eval()


def generate_with_prompts(model: Any) -> None:
    """Make a soft-prompt PeftModel use its prompts in generate().

    transformers 5 (seen with 5.24) passes the generation cache to the model as `cache`, while PEFT (seen with
    0.21.2) reads and injects the trained prefix as `past_key_values` in prepare_inputs_for_generation. The model
    then takes `cache` and drops the prefix (warning "Both `past_key_values` and `cache` are set ... ignoring
    deprecated `past_key_values`"): a P-Tuning v2 run that learned a house voice generated exactly as the base.
    Renaming the key before PEFT's step gives PEFT the cache it expects; the model accepts the old name."""
    prepare = model.base_model_prepare_inputs_for_generation

    def with_old_name(*args: Any, **kwargs: Any) -> Any:
        inputs = prepare(*args, **kwargs)
        if "cache" in inputs and "past_key_values" not in inputs:
            inputs["past_key_values"] = inputs.pop("cache")
        return inputs

    model.base_model_prepare_inputs_for_generation = with_old_name
