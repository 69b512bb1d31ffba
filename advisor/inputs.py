"""What the recommendation reads: the data files (profiled), the model's config (shapes, no weights) and the
hardware (the answers' or this machine's). All the I/O of a recommendation happens here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from advisor.answers import Answers
from advisor.data_probe import DataProfile, probe_file
from advisor.hardware import Hardware, detect_hardware, hardware_from_answers
from advisor.model_profile import ModelProfile, profile_model, tokenizer_folder
from knowledge.errors import InputError
from runner.builtin_models import builtin_model

__all__ = ["Inputs", "gather_inputs", "probe_answers_file"]


@dataclass(frozen=True)
class Inputs:
    answers: Answers
    hardware: Hardware
    model: ModelProfile
    data: DataProfile | None = None
    test_data: DataProfile | None = None


def gather_inputs(answers: Answers, *, detect: bool = True, allow_network: bool = True) -> Inputs:
    """Read what the recommendation needs: data files, the model's config, the hardware."""
    data = test = None
    tokenizer = tokenizer_folder(answers.model_location())  # token counts as training makes them, when at hand
    if answers.data.path:
        data = probe_answers_file(answers, answers.data.path, "data.path", tokenizer)
    if answers.data.test_path:
        test = probe_answers_file(answers, answers.data.test_path, "data.test_path", tokenizer)
    try:
        name = answers.model.name_or_path if builtin_model(answers.model.name_or_path) else answers.model_location()
        model = profile_model(name, answers.model.params_b, allow_network=allow_network)
    except InputError as exc:
        raise _in_answers(exc, answers, "model.name_or_path") from None
    detected = detect_hardware() if detect else None
    if answers.hardware is not None:
        hardware = hardware_from_answers([(g.name, g.memory_gb) for g in answers.hardware.gpus],
                                         answers.hardware.ram_gb, detected)
    elif detected is not None:
        hardware = detected
    else:
        raise InputError("no hardware given and detection is off", key="hardware",
                         hint="add a hardware section to the answers file")
    return Inputs(answers, hardware, model, data, test)


def _in_answers(exc: InputError, answers: Answers, key: str) -> InputError:
    """The same error, saying which answers key led to it."""
    if exc.key is None and answers.source is not None:
        return InputError(f"{exc}", file=str(answers.source), key=key)
    return exc


def probe_answers_file(answers: Answers, path: str, key: str, tokenizer: Path | None = None) -> DataProfile:
    """A data file the answers name under `key`, profiled as training will read it (their format and group
    field); errors name the key, and a file with no usable example is refused."""
    try:
        profile = probe_file(answers.resolve(path), layout=answers.data.format, group_by=answers.data.group_by,
                             tokenizer=tokenizer)
    except InputError as exc:
        raise _in_answers(exc, answers, key) from None
    if profile.examples == 0:
        first = next((p for p in profile.problems if p.severity == "error"), None)
        detail = f"; line {first.line}: {first.message}" if first else ""
        raise InputError(f"no usable examples in {path}{detail}", file=str(answers.source or path), key=key,
                         hint=f"run: finetune-advisor inspect-data {path}")
    return profile
