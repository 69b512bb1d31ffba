"""`export RUN_DIR --merged`: the adapter merged into the 16-bit base (never into a 4-bit base)."""

from __future__ import annotations

import shutil
from pathlib import Path

from knowledge.errors import InputError
from runner.plan import Plan
from runner.rundir import RunDir, open_run_dir

__all__ = ["export_merged"]


def export_merged(run_dir: str | Path) -> Path:
    run = open_run_dir(run_dir)
    plan = run.read_plan()
    method, card = plan.method, plan.card
    if card.full_model:
        raise InputError(f"{method} runs already hold a full model", file=str(run.model), hint="use it as it is")
    if not card.serving.mergeable:
        raise InputError(f"{method} adapters cannot be merged into the weights ({card.serving.merge_note})",
                         file=str(run.path))
    if not (run.adapter / "adapter_config.json").is_file():
        raise InputError("the run has no finished adapter", file=str(run.adapter),
                         hint=f"finish it first: finetune-advisor train --resume {run.path}")
    target = run.merged
    if target.exists():
        raise InputError("already exported; not overwritten", file=str(target), hint="remove it to export again")

    from runner.quiet import third_party_output_to

    with third_party_output_to(run.export_log):
        return _merge(run, plan, target)


def _merge(run: RunDir, plan: Plan, target: Path) -> Path:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from runner.model import load_tokenizer

    base_name = plan.model.name_or_path
    dtype = torch.bfloat16 if not torch.cuda.is_available() or torch.cuda.is_bf16_supported() else torch.float16
    # QLoRA too: the 16-bit base, not the 4-bit one it trained against (merging into 4-bit loses precision)
    try:
        base = AutoModelForCausalLM.from_pretrained(base_name, dtype=dtype,
                                                    trust_remote_code=plan.model.trust_remote_code)
    except (OSError, ValueError) as exc:  # the base model folder moved or was deleted since training
        raise InputError(f"cannot load the base model the run trained on: {str(exc).splitlines()[0]}",
                         file=base_name, hint="put the base model back at that path (plan.json model.name_or_path)"
                         ) from None
    merged = PeftModel.from_pretrained(base, str(run.adapter)).merge_and_unload()
    tmp = run.path / "merged.tmp"
    shutil.rmtree(tmp, ignore_errors=True)  # a killed export's partial folder: never moved into merged/
    merged.save_pretrained(str(tmp))
    load_tokenizer(base_name, plan.model.trust_remote_code).save_pretrained(str(tmp))
    from runner.model_card import write_model_card

    write_model_card(run, tmp, merged=True)
    tmp.rename(target)
    return target
