"""The whole pipeline from an answers file: recommend -> plan -> train -> evaluate -> report (replay), and the
offline demo that replays one answers file per goal on the built-in SmolLM2-135M-Instruct.

The same functions serve the CLI (`replay`, `demo`) and the app. Training runs in its own process
(runner.worker, started by advisor/runs.py); evaluation runs here once training is done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from advisor.answers import Answers, answers_from_dict, answers_to_dict, load_answers
from advisor.recommend import Recommendation
from advisor.runs import plan_run, resume_run, start_run
from knowledge.errors import InputError
from runner.launch import wait_for_exit_after_done
from runner.plan import Plan
from runner.report import Report
from runner.report import summary as report_summary
from runner.rundir import RunDir, open_run_dir

__all__ = ["DEMO_ANSWERS", "apply_settings", "demo", "replay", "ReplayResult"]

DEMO_ANSWERS = Path(__file__).resolve().parent.parent / "runner" / "assets" / "demo"
GOALS_IN_ORDER = ("knowledge", "style", "reasoning", "agent")

Say = Callable[[str], None]
OnEvent = Callable[[dict[str, Any]], None]


@dataclass
class ReplayResult:
    exit_code: int
    run: str | None
    """The run directory; None for a dry run."""
    recommendation: Recommendation
    plan: Plan
    report: Report | None = None


def apply_settings(answers: Answers, method: str | None, settings: list[str]) -> Answers:
    """--method M and --set key=value (dotted keys, YAML values), validated like the file itself."""
    data = answers_to_dict(answers)
    if method:
        data["overrides"]["method"] = method
    for item in settings:
        if "=" not in item:
            raise InputError(f"--set {item!r} must look like key=value", hint="for example overrides.epochs=5")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        target = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise InputError(f"--set {key}: {part} is not a section", key=key)
        target[parts[-1]] = value
    if answers.source is not None:  # relative data paths stay relative to the answers file
        return answers_from_dict(data, file=f"{answers.source} (with --set)", source=answers.source)
    return answers_from_dict(data, file="--set")


def _follow(run: RunDir, proc: Any, on_event: OnEvent, say: Say) -> int:
    from runner.launch import follow_with_stop

    return follow_with_stop(str(run.path), on_event, proc=proc, say=say)


def replay(answers: Answers, *, runs_dir: str = "runs", dry_run: bool = False, resume: str | None = None,
           allow_network: bool = True, say: Say = print, on_event: OnEvent | None = None,
           base_from: Path | None = None) -> ReplayResult:
    """Recommend, plan, train and evaluate. Returns what happened; raises InputError for bad input.
    `base_from`: the base model's measurements shared with other runs on the same examples (evaluate_run)."""
    on_event = on_event or (lambda event: None)
    if resume:
        run = open_run_dir(resume)
        plan = run.read_plan()
        recommendation = Recommendation.from_json(run.read_json(run.recommendation))
        if not _trained(run, plan):
            say(f"continuing training: {run.path}")
            started = resume_run(resume)
            code = _follow(run, started.proc, on_event, say)
            if code != 0 or not _trained(run, plan):
                return ReplayResult(exit_code=code or 1, run=str(run.path), recommendation=recommendation,
                                    plan=plan, report=None)
        else:
            wait_for_exit_after_done(run)
            if run.worker_alive():
                raise InputError("this run is still training", file=resume,
                                 hint=f"follow it with: finetune-advisor attach {resume}")
    else:
        if dry_run:
            recommendation, plan = plan_run(answers, allow_network=allow_network, check_model=False)
            return ReplayResult(exit_code=0, run=None, recommendation=recommendation, plan=plan, report=None)
        started = start_run(answers, runs_dir, allow_network=allow_network, say=say)
        run, plan = started.run, started.plan
        recommendation = Recommendation.from_json(run.read_json(run.recommendation))
        for line in started.lines:
            say(line)
        code = _follow(run, started.proc, on_event, say)
        if code != 0 or not _trained(run, plan):
            if code == 0:
                say(f"training stopped before the end; continue with: finetune-advisor replay "
                    f"{answers.source or 'A.yaml'} --resume {run.path}")
            return ReplayResult(exit_code=code, run=str(run.path), recommendation=recommendation, plan=plan,
                                report=None)
    from runner.evaluate import evaluate_run

    say("evaluating against the base model")
    try:
        report = evaluate_run(run.path, progress=say, base_from=base_from)
    except InputError:
        raise
    except Exception as exc:  # evaluation failed: the run is reported as failed (exit 1), with the reason
        say(f"evaluation failed: {type(exc).__name__}: {exc}")
        return ReplayResult(exit_code=1, run=str(run.path), recommendation=recommendation, plan=plan, report=None)
    return ReplayResult(exit_code=0, run=str(run.path), recommendation=recommendation, plan=plan, report=report)


def _trained(run: RunDir, plan: Plan) -> bool:
    """Whether the run's final artifact was saved (training finished)."""
    folder = run.path / plan.artifact
    return (folder / "config.json").exists() or (folder / "adapter_config.json").exists()


def summary(result: ReplayResult) -> dict[str, Any]:
    """The report summary printed at the end (and by --json)."""
    out: dict[str, Any] = {"exit_code": result.exit_code, "run": result.run, "method": result.recommendation.method}
    if result.report is not None and result.run is not None:
        out.update(report_summary(result.report, RunDir(result.run)))
    return out


def demo_answers(folder: Path, say: Say | None = None) -> dict[str, Path]:
    """The shipped demo answers files, copied next to the demo's data (their paths are relative to it); a copy
    that was changed by hand is kept as .bak first."""
    from runner.demo_assets import write_kept

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for goal in GOALS_IN_ORDER:
        target = folder / f"{goal}.yaml"
        write_kept(target, (DEMO_ANSWERS / f"{goal}.yaml").read_text(encoding="utf-8"), say)
        out[goal] = target
    return out


def _demo_folder(folder: str | None, say: Say) -> Path:
    """The demo's folder with its datasets and answers files, and the built-in model converted."""
    from runner.demo_assets import default_dir, ensure_demo_assets

    root = Path(folder) if folder else default_dir()
    ensure_demo_assets(root, say)
    return root


def demo(*, folder: str | None = None, runs_dir: str = "runs", goals: tuple[str, ...] = GOALS_IN_ORDER,
         say: Say = print, on_event: OnEvent | None = None) -> list[dict[str, Any]]:
    """Write (or reuse) the demo's datasets and model, then replay one answers file per goal. Returns one summary
    a goal."""
    root = _demo_folder(folder, say)
    files = demo_answers(root, say)
    results = []
    for goal in goals:
        say(f"== {goal}: {files[goal]}")
        result = replay(load_answers(files[goal]), runs_dir=runs_dir, allow_network=False, say=say,
                        on_event=on_event)
        results.append({"goal": goal, **summary(result)})
    return results


def demo_compare(*, folder: str | None = None, runs_dir: str = "runs", say: Say = print,
                 on_event: OnEvent | None = None, extra: list[str] | None = None) -> dict[str, Any]:
    """The knowledge demo with the recommended method and two alternatives, compared on the same split."""
    from runner.compare import compare_runs

    root = _demo_folder(folder, say)
    answers = load_answers(demo_answers(root, say)["knowledge"])
    runs = []
    for method in ("lora", "p_tuning_v2", "qlora"):  # each with the settings the advisor gives it
        say(f"== knowledge with {method}")
        result = replay(apply_settings(answers, method, extra or []), runs_dir=runs_dir,
                        allow_network=False, say=say, on_event=on_event)
        if result.exit_code != 0:
            raise RuntimeError(f"the {method} run failed: see {result.run}")
        runs.append(str(result.run))
    return compare_runs(runs, progress=say)
