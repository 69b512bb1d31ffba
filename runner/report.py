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
from runner.power import p_text
from runner.rundir import RunDir

__all__ = ["Report", "add_human_preference", "decoding_sentence", "general_sentence", "quantization_lines",
           "read_report", "render_markdown", "scorecard_rows", "speed_lines", "split_lines", "summary",
           "summary_lines", "write_report"]

REPORT_VERSION = 2


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
    """Every generation setting: strategy, do_sample, num_beams, repetition_penalty, max_new_tokens,
    end_token_ids, seed, ..."""
    primary_metric: str
    metrics: dict[str, dict[str, Any]]
    """metric -> kind, base_mean, tuned_mean, effect, ci_low, ci_high, p_value, direction, sentence, warnings, ..."""
    direction: str
    """The primary metric's finding: better | worse | no difference | inconclusive (runner/stats.py)."""
    compared_with: str
    """What the tuned model was compared with: the base, or for QLoRA the base in 4-bit."""
    general_ability: dict[str, Any]
    speed: dict[str, Any]
    resources: dict[str, Any]
    scorecard: dict[str, Any]
    verdict: str
    warnings: list[str]
    quantization: dict[str, Any] | None = None
    """QLoRA: the 4-bit base against the 16-bit base, apart from the fine-tuning effect."""
    split: dict[str, Any] | None = None
    """data/split.json: duplicates removed, and for knowledge the test facts seen in training."""
    human_preference: dict[str, Any] | None = None
    """The blind review's result, once a person has done one."""
    version: int = REPORT_VERSION

    @property
    def primary(self) -> dict[str, Any]:
        """The primary metric's result."""
        return self.metrics[self.primary_metric]

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for optional in ("human_preference", "quantization", "split"):
            if data[optional] is None:
                del data[optional]
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> Report:
        if data.get("version") != REPORT_VERSION:
            raise InputError(f"report.json was written by another version of finetune-advisor (report version "
                             f"{data.get('version')}, this one reads {REPORT_VERSION})", file=data.get("run"),
                             hint=f"evaluate the run again: finetune-advisor evaluate {data.get('run', 'RUN_DIR')}")
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
    from runner.model_card import write_model_card

    artifact = run.path / run.read_plan().artifact
    if artifact.is_dir():  # the card beside the weights carries the verdict and the metrics
        write_model_card(run, artifact)


def add_human_preference(run: RunDir, result: dict[str, Any]) -> Report:
    """Store a blind review's result in report.json and render report.md again."""
    report = read_report(run)
    report.human_preference = result
    write_report(run, report)
    return report


# --------------------------------------------------------------------------- renderings

HOW_TO_READ = ("How to read this: the p-value is the chance of a difference at least this large if the two models "
               "were in fact equally good; the 95% interval is the range of differences the data fit. They are read "
               "together: the tuned model is called better only when p < 0.05 and the interval lies wholly above "
               "zero (worse: below zero); \"no difference\" means the test could have shown one and did not; "
               "\"inconclusive\" means too few examples differ between the models for any test to show a "
               "difference, which says nothing either way.")


def _number(value: float | None, form: str = "+.3f", missing: str = "not defined") -> str:
    return missing if value is None else format(value, form)


def _interval(low: float | None, high: float | None, form: str = "+.3f") -> str:
    if low is None or high is None:
        return "not defined (too few examples)"
    return f"{format(low, form)} to {format(high, form)}"


def _shown(value: Any, unit: str = "") -> str:
    """A measured value, or `not recorded` (never `None`)."""
    return "not recorded" if value is None else f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"


def render_markdown(report: Report) -> str:
    """report.md: the verdict first, then the evidence, in words a beginner can follow."""
    primary = report.primary_metric
    r = report.primary
    card = report.scorecard
    lines = [f"# Evaluation: {report.method} on {report.model}", "", f"**Verdict: {report.verdict}.**", ""]
    lines += ["## Is the tuned model better?", "",
              f"On {report.test_examples} held-out test examples (the same ones for both), compared with "
              f"{report.compared_with}, the primary metric **{primary}** was {r['base_mean']:.3f} for the base and "
              f"{r['tuned_mean']:.3f} for the tuned model: **{report.direction}**.", "", r["sentence"], "",
              HOW_TO_READ, ""]
    lines += [f"- {line}" for line in split_lines(report)]
    lines += [f"- Note: {warning}" for warning in report.warnings]
    lines += ["", "| metric | base | tuned | difference | 95% CI | p | finding |", "|---|---|---|---|---|---|---|"]
    for name, m in report.metrics.items():
        lines.append(f"| {name} | {m['base_mean']:.3f} | {m['tuned_mean']:.3f} | {m['effect']:+.3f} | "
                     f"{_interval(m['ci_low'], m['ci_high'])} | {m['p_value']:.4g} | {m['direction']} |")
    lines += ["", "## Gates", "", "Ready to deploy needs every gate passed, whatever the weighted total "
              "(knowledge/scorecard.yaml).", "", "| gate | passed | measured |", "|---|---|---|"]
    lines += [f"| {g['gate']} | {'yes' if g['passed'] else '**no**'} | {g['detail']} |" for g in card["gates"]]
    if report.quantization:
        lines += ["", "## Quantization (QLoRA)", ""] + [f"- {line}" for line in quantization_lines(report)]
    lines += ["", "## General ability", "", general_sentence(report), ""]
    lines += ["## Speed and resources", ""] + [f"- {line}" for line in speed_lines(report)]
    res = report.resources
    lines += [f"- Training: {_shown(res['train_seconds'], ' s')}, peak memory {_shown(res['peak_memory_gb'], ' GB')}; "
              f"artifact {_shown(_rounded(res['artifact_gb']), ' GB')}.", ""]
    lines += ["## Decoding", "", decoding_sentence(report), ""]
    lines += ["## Scorecard", "", "| dimension | weight | score | measured |", "|---|---|---|---|"]
    for name, weight, score, shown in scorecard_rows(report):
        lines.append(f"| {name} | {weight} | {score} | {shown} |")
    lines += ["", f"Weighted total: **{card['total']} of 5** (ready to deploy at {card['ready_threshold']:g} or more, "
              "with every gate passed)."]
    if card["improve_first"]:
        lines += ["", f"Improve first: **{card['improve_first']['dimension']}**: {card['improve_first']['advice']}."]
    lines += ["", "Per-example outputs and scores: `eval/predictions-base.jsonl`, `eval/predictions-tuned.jsonl`"
              + (", `eval/predictions-base_quantized.jsonl`" if report.quantization else "") + ".",
              "Training curve: `loss.png` (blue: training loss, orange: validation loss, against the step).", ""]
    if report.human_preference:
        lines += ["## Human preference (blind review)", "", report.human_preference["sentence"], ""]
    return "\n".join(lines)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def split_lines(report: Report) -> list[str]:
    """How the test split was made: duplicates, and for knowledge the test facts seen in training."""
    s = report.split
    if not s:
        return []
    out = []
    if s.get("duplicates_removed"):
        out.append(f"{s['duplicates_removed']} exact duplicate(s) were removed before splitting.")
    if s.get("test_facts") is not None:
        out.append(f"Test facts seen in training: {s['test_facts_seen_in_training']} of {s['test_facts']} (facts "
                   f"grouped by {s['grouped_by']}).")
    return out


def quantization_lines(report: Report) -> list[str]:
    q = report.quantization
    assert q is not None
    m = q["metrics"][report.primary_metric]
    g = q["general_ability"]
    t = q["tuned_against_16bit_base"]
    return [f"Loading the base in 4-bit alone changed {report.primary_metric} from {m['base_mean']:.3f} (16-bit) to "
            f"{m['tuned_mean']:.3f} (4-bit): {m['direction']} ({p_text(m['p_value'])}), and its general-set "
            f"perplexity from {g['perplexity_base']:.3f} to {g['perplexity_tuned']:.3f} "
            f"({g['perplexity_increase'] * 100:+.1f}%). This is the quantization effect; the comparison above is the "
            "fine-tuning effect alone.",
            f"Against the 16-bit base, the tuned model's {report.primary_metric} is {t['tuned_mean']:.3f} vs "
            f"{t['base_mean']:.3f}: {t['direction']} ({p_text(t['p_value'])})."]


def general_sentence(report: Report) -> str:
    g = report.general_ability
    return (f"Token-weighted perplexity on a general set ({g['texts']} passages, {g['tokens']} tokens, that are not "
            f"your task; lower is better): base {g['perplexity_base']:.3f}, tuned {g['perplexity_tuned']:.3f} "
            f"({g['perplexity_increase'] * 100:+.1f}%). {g['sentence']}")


def speed_lines(report: Report) -> list[str]:
    s = report.speed
    if not s.get("ratio"):
        return [f"Generation speed: {s.get('method', 'not measured')}; the scorecard leaves speed out and rescales "
                "the other weights."]
    shown = {"base": "base", "tuned": "tuned", "tuned_merged": "merged", "base_quantized": "4-bit base"}
    rates = ", ".join(f"{label} {s[key]['tokens_per_s']:g} ({s[key]['lowest']:g}-{s[key]['highest']:g})"
                      for key, label in shown.items() if isinstance(s.get(key), dict))
    ratio = s["ratio"]
    served = shown[s["served"]]
    verdict = (f"{served} / {shown[s['against']]}: {ratio['ratio']:.2f} (rounds allow {ratio['range'][0]:.2f} to "
               f"{ratio['range'][1]:.2f})" + ("" if ratio["measured_difference"] else
                                                  ": the rounds overlap, so no speed difference is claimed and the "
                                                  "scorecard scores it as equal"))
    return [f"Generation, tokens/s (median of {s[s['served']]['rounds']} rounds, lowest-highest): {rates}.",
            f"Served model speed, {verdict}. {s['method']}."]


def decoding_sentence(report: Report) -> str:
    d = report.decoding
    return (f"{d['strategy']} (do_sample {d['do_sample']}, num_beams {d['num_beams']}, repetition_penalty "
            f"{d['repetition_penalty']:g}, no_repeat_ngram_size {d['no_repeat_ngram_size']}), at most "
            f"{d['max_new_tokens']} new tokens, stopping at the model's end tokens {d['end_token_ids']}; seed "
            f"{d['seed']}; weights in {d.get('dtype', 'their stored dtype')}"
            + (f" ({d['dtype_note']})" if d.get("dtype_note") else "")
            + ". Nothing is taken from the model's own generation config.")


#: How each deployment kind serves, in words.
DEPLOYMENT_WORDS = {"full_model": "a whole model: it serves as the base does",
                    "mergeable_and_served_by_vllm": "merges into the base, or serves as an adapter (vLLM)",
                    "mergeable": "merges into the base weights",
                    "not_mergeable": "stays a separate adapter: it cannot be merged into the weights"}


def duration_words(seconds: float) -> str:
    """45 s, 12 min, 3.2 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def measured_words(dimension: str, inputs: dict[str, Any]) -> str:
    """What a scorecard dimension was scored from, in words (the numbers as report.json holds them)."""
    i = inputs
    if dimension == "task" and "metric" in i:
        return (f"{i['metric']} {i['tuned']:.3g} tuned against {i['base']:.3g} base ({p_text(i['p_value'])}): "
                f"{i['finding']}")
    if dimension == "general":
        increase = i.get("perplexity_increase")
        return "not measured" if increase is None else f"perplexity on general text {increase * 100:+.1f}% against " \
                                                        "the base"
    if dimension == "speed":
        ratio = i.get("throughput_ratio")
        return "not measured" if ratio is None else f"generates at {ratio:.2f}x the base's speed"
    if dimension == "resources":
        parts = []
        if i.get("peak_memory_gb") is not None:
            of = f" of {i['available_gb']:g}" if i.get("available_gb") else ""
            parts.append(f"peak memory {i['peak_memory_gb']:.2f}{of} GB")
        if i.get("training_hours") is not None:
            parts.append(f"trained in {duration_words(i['training_hours'] * 3600)}")
        if i.get("artifact_gb") is not None:
            parts.append(f"saved model {i['artifact_gb'] * 1000:,.1f} MB")
        return ", ".join(parts) or "not recorded"
    if dimension == "deployment" and "kind" in i:
        return DEPLOYMENT_WORDS.get(i["kind"], str(i["kind"]))
    return ", ".join(f"{k.replace('_', ' ')} {_shown(v)}" for k, v in i.items() if k != "sub_scores")


def scorecard_rows(report: Report) -> list[tuple[str, str, str, str]]:
    """(dimension, weight, score, what it was scored from, in words) for each scorecard dimension."""
    rows = []
    for name, d in report.scorecard["dimensions"].items():
        score = "not measured" if d["score"] is None else f"{d['score']:g}"
        rows.append((name, f"{d['weight']:.0%}", score, measured_words(name, d["inputs"])))
    return rows


def summary_lines(report: Report, run: RunDir) -> list[str]:
    """What the command line prints at the end of `evaluate` and `replay`."""
    return [report.primary["sentence"], f"verdict: {report.verdict}", f"report: {run.report_md}"]


def summary(report: Report, run: RunDir) -> dict[str, Any]:
    """The figures of one evaluated run, as `replay --json` and the demo's table show them."""
    primary = report.primary
    return {"goal": report.goal, "metric": report.primary_metric, "base": primary["base_mean"],
            "tuned": primary["tuned_mean"], "effect": primary["effect"], "ci": [primary["ci_low"], primary["ci_high"]],
            "p_value": primary["p_value"], "direction": report.direction,
            "scorecard_total": report.scorecard["total"], "ready": report.scorecard["ready"],
            "verdict": report.verdict, "report": str(run.report_md)}
