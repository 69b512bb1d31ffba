"""Choosing the base model (the method guide's step before any method): the largest catalog models whose
recommended method fits this hardware with the estimate's error kept free, each with its licence line and why
it fits; models whose licence does not allow the stated use are left out, and said so."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advisor.answers import Answers, answers_from_dict, answers_to_dict
from advisor.recommend import gather_inputs, recommend
from knowledge import ModelChoice, load_model_choices

__all__ = ["MAX_HOURS", "STAND_IN_MODEL", "Suggestion", "suggest_models", "suggestion_answers"]

#: A model that fits but would train longer than this here is left out, and said so (the recommendation warns
#: at the same point).
MAX_HOURS = 24
#: Answers need a model; when choosing one, each catalog model takes this one's place in turn.
STAND_IN_MODEL = "gpt2"


@dataclass
class Suggestion:
    model: ModelChoice
    method: str
    needs_gb: float
    available_gb: float
    device: str
    hours: float
    time: str

    @property
    def why(self) -> str:
        return (f"{self.method} needs {self.needs_gb:g} GB of the {self.available_gb:g} GB "
                f"{'GPU memory' if self.device == 'cuda' else 'memory'} here, with the estimate's error kept free; "
                f"training {self.time.split(':')[0]}")

    def to_json(self) -> dict[str, Any]:
        m = self.model
        return {"id": m.id, "params_b": m.params_b, "context_length": m.context_length,
                "licence": {"name": m.licence.name, "commercial": m.licence.commercial,
                            "condition": m.licence.condition},
                "chat_template": m.chat_template, "good_at": m.good_at, "source": m.source,
                "method": self.method, "needs_gb": self.needs_gb, "available_gb": self.available_gb,
                "training_hours": self.hours, "why": self.why}


def _hardware_answers() -> dict[str, Any]:
    """This machine's hardware, detected once, in the answers file's layout."""
    from advisor.hardware import detect_hardware

    hw = detect_hardware()
    out: dict[str, Any] = {"gpus": [{"name": g.name, "memory_gb": g.memory_gb} for g in hw.gpus]}
    if hw.ram_gb:
        out["ram_gb"] = hw.ram_gb
    return out


def suggestion_answers(raw: dict[str, Any], *, source: Any = None) -> Answers:
    """Answers for suggestions from what is known so far: a knowledge goal and 1000 examples unless said, and the
    stand-in model."""
    raw = {"version": 1, "goal": "knowledge", **raw, "model": {"name_or_path": STAND_IN_MODEL}}
    data = raw.get("data") or {}
    if not data.get("path") and not data.get("examples"):
        raw["data"] = {"examples": 1000}
    return answers_from_dict(raw, file="your answers", source=source)


def suggest_models(answers: Answers | None = None, *, commercial: bool | None = None,
                   limit: int = 5) -> tuple[list[Suggestion], list[str]]:
    """The largest catalog models whose recommended method fits and trains within MAX_HOURS here, largest first
    (at most `limit`), and the models left out, with why: a licence that does not allow commercial use (when it
    is asked for: `commercial`, or the answers' use: commercial), or days of training."""
    base = answers_to_dict(answers if answers is not None else suggestion_answers({}))
    if base.get("hardware") is None:
        base["hardware"] = _hardware_answers()
    # each model's own advice, not a method fixed for another
    base["overrides"] = {k: v for k, v in base.get("overrides", {}).items() if k != "method"}
    want_commercial = commercial if commercial is not None else (answers is not None and answers.use == "commercial")
    seen: dict[str, ModelChoice] = {c.id: c for c in load_model_choices().values()}
    fitting: list[Suggestion] = []
    left_out: list[str] = []
    for choice in sorted(seen.values(), key=lambda c: c.params_b, reverse=True):
        if want_commercial and not choice.licence.commercial:
            left_out.append(f"{choice.id}: {choice.licence.line()}")
            continue
        if len(fitting) >= limit:
            continue
        data = {**base, "model": {"name_or_path": choice.id}}
        rec = recommend(gather_inputs(answers_from_dict(data, source=answers.source if answers else None),
                                      detect=False, allow_network=False))
        if not rec.memory["fits"]:
            continue
        hours = float(rec.time["estimated_hours"])
        if hours > MAX_HOURS:  # it fits, but training it here would take days
            left_out.append(f"{choice.id}: fits, but training it here would take about {hours:.0f} hours")
            continue
        fitting.append(Suggestion(choice, rec.method, rec.memory["estimated_gb"], rec.memory["available_gb"],
                                  rec.memory["device"], hours, rec.time["basis"]))
    return fitting, left_out
