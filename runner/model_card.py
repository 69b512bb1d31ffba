"""The model card: README.md with the Hugging Face metadata header, written into adapter/ (or model/) when
training saves it, again with the verdict and metrics when the run is evaluated, and into merged/ on export.

It holds the base model, the method and its settings, the data in counts (never its content), the evaluation's
verdict and metrics with their 95% intervals, and the command that reproduces the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from runner.plan import Plan
from runner.rundir import RunDir

__all__ = ["model_card", "write_model_card"]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def model_card(run: RunDir, plan: Plan, *, merged: bool = False) -> str:
    """The card's text: a YAML metadata header (base_model, library_name, tags, model-index with the measured
    metrics), then the details in words."""
    card = plan.card
    split = _read_json(run.path / "data" / "split.json") or {}
    report = _read_json(run.report_json)
    base = plan.model.name_or_path
    library = "transformers" if card.full_model or merged else "peft"
    meta: dict[str, Any] = {"base_model": base, "library_name": library, "pipeline_tag": "text-generation",
                            "tags": ["finetune-advisor", plan.method, plan.goal] + (["merged"] if merged else [])}
    if report is not None:
        metrics = []
        for name, m in report["metrics"].items():
            metrics.append({"type": name, "name": f"{name} (tuned; base {m['base_mean']:.4g})",
                            "value": round(float(m["tuned_mean"]), 4)})
        meta["model-index"] = [{"name": run.path.name, "results": [{
            "task": {"type": "text-generation"},
            "dataset": {"name": Path(plan.data.path).name, "type": "custom", "split": "test"},
            "metrics": metrics}]}]
    hp = {k: v for k, v in plan.hyperparameters.items() if v is not None}
    lines = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             f"# {run.path.name}", "",
             f"{card.name} ({plan.method}) of `{base}` for {plan.goal}, trained with finetune-advisor"
             + (", merged into the 16-bit base" if merged else "") + ".", "",
             "## Training", "",
             "Settings: " + ", ".join(f"{k} {v}" for k, v in hp.items()) + ".", ""]
    if split:
        lines += [f"Data: {split.get('examples_read', '?')} examples read from `{Path(plan.data.path).name}`, "
                  f"{split.get('duplicates_removed', 0)} duplicates removed; {split.get('train', '?')} for training, "
                  f"{split.get('validation', '?')} for validation, {split.get('test', '?')} held out for the test"
                  + (f" (grouped by {split['grouped_by']})" if split.get("grouped_by") else "") + ".", ""]
    if report is None:
        lines += ["## Evaluation", "",
                  "Not evaluated yet: `finetune-advisor evaluate RUN_DIR` writes the verdict here.", ""]
    else:
        lines += ["## Evaluation", "", f"**Verdict: {report['verdict']}.**", "",
                  f"On {report['test_examples']} held-out test examples, against {report['compared_with']}:", "",
                  "| metric | base | tuned | difference (95% interval) | p |", "|---|---|---|---|---|"]
        for name, m in report["metrics"].items():
            lines.append(f"| {name} | {m['base_mean']:.4g} | {m['tuned_mean']:.4g} | {m['effect']:+.4g} "
                         f"({m['ci_low']:+.4g} to {m['ci_high']:+.4g}) | {m['p_value']:.3g} |")
        g = report.get("general_ability") or {}
        if g.get("perplexity_increase") is not None:
            lines += ["", f"General-text perplexity: {g['perplexity_base']:.4g} for the base, "
                          f"{g['perplexity_tuned']:.4g} tuned ({g['perplexity_increase'] * 100:+.1f}%)."]
        lines += ["", f"Scorecard: {report['scorecard']['total']:.2f} of 5 (ready to deploy at "
                      f"{report['scorecard']['ready_threshold']:g} with every gate passed).", ""]
    lines += ["## Reproduce", "", "```sh",
              f"finetune-advisor replay {run.answers}   # the answers this run was made from",
              "```", ""]
    return "\n".join(lines)


def write_model_card(run: RunDir, folder: Path, *, merged: bool = False) -> Path:
    """README.md in `folder` (the adapter, model or merged folder); replaces the template PEFT writes there."""
    path = folder / "README.md"
    path.write_text(model_card(run, run.read_plan(), merged=merged), encoding="utf-8")
    return path
