"""Readable terminal output (rich) for the pure commands: recommend, estimate, hardware, inspect-data."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from advisor.data_probe import DataProfile
from advisor.hardware import Hardware
from advisor.recommend import Recommendation
from runner.records import Problem

__all__ = ["SETTING_NAMES", "evidence_lines", "memory_bar", "memory_legend", "print_data_profiles", "print_estimate",
           "print_hardware", "print_recommendation"]

#: Problems shown per file in the readable output (all of them are in --json).
SHOWN_PROBLEMS = 20


def _console() -> Console:
    import sys

    # let the terminal wrap, so paths stay whole for grep; piped output gets room for whole table rows
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


#: Settings in words (the answers file's key is shown beside them, for overrides).
SETTING_NAMES = {
    "learning_rate": "Learning rate", "epochs": "Epochs (passes over the data)", "lora_rank": "LoRA rank",
    "lora_alpha": "LoRA scaling (alpha)", "lora_dropout": "LoRA dropout", "lora_targets": "Layers LoRA adapts",
    "batch_size": "Examples per step", "gradient_accumulation": "Steps added up per update",
    "max_length": "Longest example, tokens", "num_virtual_tokens": "Virtual tokens (soft prompt length)",
    "packing": "Pack short examples together", "optimizer": "Optimizer", "bits": "Base weights, bits",
    "precision": "Compute precision", "gradient_checkpointing": "Recompute activations (saves memory)",
}

#: The memory bar's colour for each part of the estimate.
MEMORY_COLOURS = {"weights": "blue", "trainable_and_optimizer": "magenta", "activations": "yellow",
                  "overhead": "white"}


def memory_legend(breakdown: dict[str, float]) -> str:
    """What each colour of the memory bar is, with its size (rich markup)."""
    parts = [f"[{MEMORY_COLOURS.get(k, 'white')}]█[/] {k.replace('_', ' ')} {v:g} GB" for k, v in breakdown.items()]
    return "  ".join([*parts, "░ free"])


def memory_bar(breakdown: dict[str, float], available_gb: float, width: int = 40) -> str:
    """A text bar of the estimate's parts against the available memory (rich markup)."""
    total = sum(breakdown.values())
    scale = width / max(available_gb, total, 1e-9)
    cells = ""
    used = 0
    for key, value in breakdown.items():
        n = round(value * scale)
        cells += f"[{MEMORY_COLOURS.get(key, 'white')}]{'█' * n}[/]"
        used += n
    free = max(0, width - used)
    over = total > available_gb
    return f"{cells}{'░' * free}{' [red]over[/]' if over else ''}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def print_recommendation(rec: Recommendation) -> None:
    con = _console()
    mem, time = rec.memory, rec.time
    fits = "[green]fits[/]" if mem["fits"] else "[red]does not fit[/]"
    con.print(f"[bold]Recommended: {rec.method_name}[/] ([cyan]{rec.method}[/]) for "
              f"{rec.model['name']} ({rec.model['params_b']:g}B) on {rec.hardware['device']}")
    con.print(f"  trains {rec.trainable_params:,} parameters ({rec.trainable_percent:g}% of the model)")
    con.print("\n[bold]Why[/]")
    for reason in rec.reasons:
        con.print(f"  • {escape(reason)}")
    if rec.evidence:
        con.print("\n[bold]Evidence[/] [dim](knowledge/evidence.yaml)[/]")
        for line in evidence_lines(rec):
            con.print(f"  {escape(line)}")
    con.print("\n[bold]Settings[/]")
    table = Table(box=None, padding=(0, 2), show_header=True, header_style="dim")
    table.add_column("setting")
    table.add_column("value", justify="right")
    table.add_column("advised")
    for key, value in rec.hyperparameters.items():
        if value is None:
            continue
        rng = rec.advised_ranges.get(key)
        table.add_row(key, _fmt(value), f"{rng[0]:g} – {rng[1]:g}" if rng else "")
    con.print(table)
    con.print(f"\n[bold]Memory[/]  {mem['summary']}: {fits}")
    con.print(f"  {memory_bar(mem['breakdown'], mem['available_gb'])}")
    con.print(f"  {memory_legend(mem['breakdown'])}")
    con.print(f"  [dim]error ± {mem['relative_error']:.0%}: {escape(mem['error_basis'])}[/]")
    if mem.get("batch_basis"):
        con.print(f"  [dim]batch: {escape(mem['batch_basis'])}[/]")
    if processes_line(rec):
        con.print(f"\n[bold]Processes[/]  {escape(processes_line(rec))}")
    con.print(f"\n[bold]Time[/]  {escape(time['basis'])}")
    if time.get("formula"):
        con.print(f"  [dim]{escape(time['formula'])}[/]")
    if time.get("evaluation_basis"):
        con.print(f"  evaluation afterwards: {escape(time['evaluation_basis'])}")
    if rec.alternatives:
        con.print("\n[bold]Alternatives[/]")
        for alt in rec.alternatives:
            fit = "" if alt["fits"] else ", [red]does not fit[/]"
            con.print(f"  • [cyan]{alt['method']}[/] ({alt['estimated_gb']:g} GB{fit}): {escape(alt['why_not'])}")
    if rec.warnings:
        con.print("\n[bold yellow]Warnings[/]")
        for warning in rec.warnings:
            con.print(f"  ! {escape(warning)}")
    con.print(f"\n[dim]rules applied: {', '.join(rec.rules_applied)}; serving: {rec.serving['note']}[/]")


def evidence_lines(rec: Recommendation) -> list[str]:
    """Each applied rule's evidence: the guide's rule, the published results, the project's own measurement."""
    lines = []
    for e in rec.evidence:
        lines.append(f"rule {e['rule']} (the method guide): {e['guide']}")
        lines.append(f"  published: {e['published']}")
        lines.append(f"  {e['measured']}" if e["measured"] else "  not measured by this project yet: "
                     "finetune-advisor pilot checks it on your data")
    return lines


def processes_line(rec: Recommendation) -> str:
    """How training is spread over processes, or '' for one process."""
    dist = rec.distributed or {}
    if int(dist.get("processes", 1)) <= 1:
        return ""
    machines = f" x {dist['nodes']} machines" if dist["nodes"] > 1 else ""
    return (f"{dist['processes']} processes ({dist['processes_per_node']} a machine{machines}): {dist['name']}, "
            f"global batch {dist['global_batch']}; memory is per GPU")


def print_estimate(est: dict[str, Any]) -> None:
    con = _console()
    cfg, model = est["config"], est["model"]
    con.print(f"[bold]{cfg['method']}[/] on {model['name']} ({model['params_b']:g}B, {model['source']}), "
              f"batch {cfg['batch_size']} x {cfg['seq_len']} tokens, device {cfg['device']}")
    con.print(f"  peak memory: [bold]{est['estimated_gb']:g} GB ± {est['uncertainty_gb']:g}[/]; "
              f"trains {est['trainable_params']:,} parameters "
              f"({est['trainable_percent']:g}%)")
    table = Table(box=None, padding=(0, 2), show_header=False)
    for key, value in est["breakdown"].items():
        table.add_row(f"  {key.replace('_', ' ')}", f"{value:g} GB")
    con.print(table)
    con.print(f"[dim]  error ± {est['relative_error']:.0%}: {escape(est['error_basis'])}[/]")
    con.print("[dim]  detail: " + ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in est["detail"].items()) + "[/]")
    con.print(f"  time: {escape(est['time']['basis'])}")
    con.print(f"[dim]  {escape(est['time']['formula'])}[/]")
    for note in est["assumptions"] + model["notes"]:
        con.print(f"[dim]  - {escape(note)}[/]")


def print_hardware(hw: Hardware) -> None:
    con = _console()
    if hw.gpus:
        for i, g in enumerate(hw.gpus):
            extra = ", ".join(x for x in (f"{g.free_gb:g} GB free" if g.free_gb is not None else "",
                                          f"compute {g.compute_capability}" if g.compute_capability else "",
                                          f"driver {g.driver}" if g.driver else "") if x)
            con.print(f"GPU {i}: [bold]{g.name}[/], {g.memory_gb:g} GB" + (f" ({extra})" if extra else ""))
    else:
        con.print("GPU: none. Training runs on the CPU: fine for tiny models and the demo, slow beyond that.")
    con.print(f"RAM: {hw.ram_gb:g} GB ({hw.ram_available_gb:g} GB available)")
    bf16 = {True: "AMX-BF16 (trains in bf16)", False: "no AMX-BF16 (trains in fp32)", None: None}[hw.cpu_bf16]
    extra = ", ".join(x for x in (hw.cpu_name, hw.cpu_vector and hw.cpu_vector.upper(),
                                  f"{hw.cpu_ghz:g} GHz" if hw.cpu_ghz else None, bf16) if x)
    con.print(f"CPU: {hw.cpu_cores} core(s)" + (f", {extra}" if extra else ""))
    if hw.disk_free_gb is not None:
        con.print(f"Disk: {hw.disk_free_gb:g} GB free here")
    for note in hw.notes:
        con.print(f"[dim]note: {note}[/]")


def _stats(label: str, s: Any, unit: str) -> str:
    return f"{label}: mean {s.mean:g}, median {s.p50:g}, p95 {s.p95:g}, p99 {s.p99:g}, max {s.max:,} {unit}"


def print_data_profiles(profiles: list[DataProfile], overlaps: list[Problem]) -> None:
    con = _console()
    for p in profiles:
        con.print(f"[bold]{escape(p.file)}[/]: {p.examples:,} usable example(s) of {p.records:,} record(s), "
                  f"layout {p.layout or 'unknown'} ({p.container})")
        if p.field_coverage:
            con.print("  fields: " + ", ".join(f"{k} {v:.0%}" for k, v in p.field_coverage.items()))
        for label, s, unit in (("prompt", p.prompt_chars, "chars"), ("answer", p.response_chars, "chars"),
                               ("total", p.total_chars, "chars"), ("tokens", p.total_tokens, "tokens")):
            if s is not None:
                con.print("  " + _stats(label, s, unit))
        if p.empty or p.duplicates:
            con.print(f"  empty answers: {p.empty}, duplicates: {p.duplicates}")
        if p.problem_counts:
            counts = sorted(p.problem_counts.items())
            con.print("  problems: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts))
            for problem in p.problems[:SHOWN_PROBLEMS]:
                where = f"line {problem.line}" if problem.line else "file"
                colour = "red" if problem.severity == "error" else "yellow"
                con.print(f"    [{colour}]{escape(p.file)}:{problem.line or ''}[/] {where}: "
                          f"{escape(problem.message)}")
            hidden = sum(p.problem_counts.values()) - min(len(p.problems), SHOWN_PROBLEMS)
            if hidden > 0:
                con.print(f"    ... and {hidden} more (all with --json)")
        else:
            con.print("  [green]no problems found[/]")
    for o in overlaps:
        con.print(f"[red]leakage[/]: {escape(o.message)}")


def print_comparison(result: dict[str, Any]) -> None:
    con = _console()
    con.print(f"[bold]{result['metric']}[/] on {result['test_examples']} shared test examples")
    table = Table(box=None, padding=(0, 2))
    for column in ("run", "base", "tuned", "vs base", "95% CI", "p (Holm)", "scorecard"):
        table.add_column(column)
    for r in result["runs"]:
        table.add_row(escape(r["name"]), f"{r['base']:.3f}", f"{r['tuned']:.3f}", f"{r['effect']:+.3f}",
                      f"{r['ci'][0]:+.3f} to {r['ci'][1]:+.3f}", f"{r['p_holm']:.4g}",
                      f"{r['scorecard_total']:.2f}" + (" ready" if r["ready"] else ""))
    con.print(table)
    if result["omnibus"]:
        con.print(f"{result['omnibus']['test']}: {escape(result['omnibus']['sentence'])}")
    for pair in result["pairwise"]:
        con.print(f"  {escape(pair['b'])} vs {escape(pair['a'])}: {pair['effect_b_minus_a']:+.3f} "
                  f"(95% CI {pair['ci'][0]:+.3f} to {pair['ci'][1]:+.3f}), Holm-adjusted p = {pair['p_holm']:.4g}")


def print_demo_summary(rows: list[dict[str, Any]]) -> None:
    con = _console()
    table = Table(title="finetune-advisor demo", box=None, padding=(0, 2))
    for column in ("goal", "method", "metric", "base", "tuned", "p", "finding", "scorecard", "verdict"):
        table.add_column(column)
    for r in rows:
        if "metric" not in r:
            table.add_row(r["goal"], r["method"], "-", "-", "-", "-", "-", "-", f"[red]failed[/] ({r['run']})")
            continue
        table.add_row(r["goal"], r["method"], r["metric"], f"{r['base']:.3f}", f"{r['tuned']:.3f}",
                      f"{r['p_value']:.3g}", r["direction"], f"{r['scorecard_total']:.2f}",
                      "ready" if r["ready"] else "inconclusive" if r["direction"] == "inconclusive" else "not ready")
    con.print(table)
    for r in rows:
        if r.get("report"):
            con.print(f"{r['goal']}: {escape(r['report'])}")
