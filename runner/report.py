"""The report of an evaluated run: the Report (report.json), and every rendering of it: report.md, the
command line's summary, and the app's results screen. Everything a user reads about a result comes from here.

A blind review's result is stored in report.json too, and report.md is rendered again from it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from knowledge.errors import InputError
from runner.rundir import RunDir

__all__ = ["Report", "add_human_preference", "read_report", "render_markdown", "scorecard_rows", "summary",
           "summary_lines", "write_report"]

REPORT_VERSION = 1


@dataclass
class Report:
    """What `evaluate` finds (report.json)."""
    run: str
    method: str
    goal: str
    model: str
    device: str
    test_examples: int
    test_split: str
    decoding: dict[str, Any]
    primary_metric: str
    metrics: dict[str, dict[str, Any]]
    """metric -> kind, base_mean, tuned_mean, effect, ci_low, ci_high, p_value, sentence, warnings, ..."""
    significant: bool
    general_ability: dict[str, Any]
    speed: dict[str, Any]
    resources: dict[str, Any]
    scorecard: dict[str, Any]
    verdict: str
    warnings: list[str]
    human_preference: dict[str, Any] | None = None
    """The blind review's result, once a person has done one."""
    version: int = REPORT_VERSION

    @property
    def primary(self) -> dict[str, Any]:
        """The primary metric's result."""
        return self.metrics[self.primary_metric]

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["human_preference"] is None:
            del data["human_preference"]
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> Report:
        return Report(**data)


def read_report(run: RunDir) -> Report:
    if not run.report_json.is_file():
        raise InputError("the run has no report yet", file=str(run.path),
                         hint=f"evaluate it first: finetune-advisor evaluate {run.path}")
    return Report.from_json(run.read_json(run.report_json))


def write_report(run: RunDir, report: Report) -> None:
    """report.json and report.md."""
    run.report_json.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
    run.report_md.write_text(render_markdown(report), encoding="utf-8")


def add_human_preference(run: RunDir, result: dict[str, Any]) -> Report:
    """Store a blind review's result in report.json and render report.md again."""
    report = read_report(run)
    report.human_preference = result
    write_report(run, report)
    return report


# --------------------------------------------------------------------------- renderings

def render_markdown(report: Report) -> str:
    """report.md: the verdict first, then the evidence, in words a beginner can follow."""
    primary = report.primary_metric
    r = report.primary
    card = report.scorecard
    lines = [f"# Evaluation: {report.method} on {report.model}", "", f"**Verdict: {report.verdict}.**", ""]
    lines += ["## Is the tuned model better?", "",
              f"On {report.test_examples} held-out test examples (the same ones for both models), "
              f"the primary metric **{primary}** was {r['base_mean']:.3f} for the base model and "
              f"{r['tuned_mean']:.3f} for the tuned one.", "", r["sentence"], "",
              "What this means: the p-value is the chance of seeing a difference at least this large if the two "
              "models were in fact equally good; below 0.05 we call the difference significant. The 95% interval "
              "is the range of differences the data are consistent with: if it lies wholly above zero, the tuned "
              "model is better.", ""]
    for warning in report.warnings:
        lines.append(f"- Note: {warning}")
    lines += ["", "| metric | base | tuned | difference | 95% CI | p |", "|---|---|---|---|---|---|"]
    for name, m in report.metrics.items():
        lines.append(f"| {name} | {m['base_mean']:.3f} | {m['tuned_mean']:.3f} | {m['effect']:+.3f} | "
                     f"{m['ci_low']:+.3f} to {m['ci_high']:+.3f} | {m['p_value']:.4g} |")
    lines += ["", "## General ability", "", general_sentence(report), ""]
    s = report.speed
    lines += ["## Speed and resources", "",
              f"- Generation: base {s['base']['tokens_per_s']} tokens/s, tuned {s['tuned_unmerged']['tokens_per_s']}"
              + (f", merged {s['tuned_merged']['tokens_per_s']}" if s["tuned_merged"] else "") + " tokens/s.",
              f"- Training: {report.resources['train_seconds']} s, peak memory "
              f"{report.resources['peak_memory_gb']} GB; artifact {report.resources['artifact_gb']} GB.", ""]
    lines += ["## Scorecard", "", "| dimension | weight | score | measured |", "|---|---|---|---|"]
    for name, weight, score, shown in scorecard_rows(report):
        lines.append(f"| {name} | {weight} | {score} | {shown} |")
    lines += ["", f"Weighted total: **{card['total']} of 5** (ready to deploy at {card['ready_threshold']:g} or more)."]
    if card["improve_first"]:
        lines += ["", f"Improve first: **{card['improve_first']['dimension']}**: {card['improve_first']['advice']}."]
    lines += ["", "Per-example outputs and scores: `eval/predictions-base.jsonl`, `eval/predictions-tuned.jsonl`.",
              "Training curve: `loss.png` (blue: training loss, orange: validation loss, against the step).", ""]
    if report.human_preference:
        lines += ["## Human preference (blind review)", "", report.human_preference["sentence"], ""]
    return "\n".join(lines)


def general_sentence(report: Report) -> str:
    g = report.general_ability
    return (f"Perplexity on a general set ({g['texts']} passages that are not your task; lower is better): base "
            f"{g['perplexity_base']:.3f}, tuned {g['perplexity_tuned']:.3f} ({g['perplexity_increase'] * 100:+.1f}%).")


def scorecard_rows(report: Report) -> list[tuple[str, str, str, str]]:
    """(dimension, weight, score, the measured inputs) for each scorecard dimension."""
    rows = []
    for name, d in report.scorecard["dimensions"].items():
        shown = ", ".join(f"{k} {v}" for k, v in d["inputs"].items() if k != "sub_scores")
        score = "not measured" if d["score"] is None else f"{d['score']:g}"
        rows.append((name, f"{d['weight']:.0%}", score, shown))
    return rows


def summary_lines(report: Report, run: RunDir) -> list[str]:
    """What the command line prints at the end of `evaluate` and `replay`."""
    return [report.primary["sentence"], f"verdict: {report.verdict}", f"report: {run.report_md}"]


def summary(report: Report, run: RunDir) -> dict[str, Any]:
    """The figures of one evaluated run, as `replay --json` and the demo's table show them."""
    primary = report.primary
    return {"goal": report.goal, "metric": report.primary_metric, "base": primary["base_mean"],
            "tuned": primary["tuned_mean"], "effect": primary["effect"], "ci": [primary["ci_low"], primary["ci_high"]],
            "p_value": primary["p_value"], "significant": report.significant,
            "scorecard_total": report.scorecard["total"], "ready": report.scorecard["ready"],
            "verdict": report.verdict, "report": str(run.report_md)}
