"""Starting and resuming a training run, the one way every front end does it (train, replay, the app): the
checks that must pass first, the run directory with its inputs, and the training process.

No torch here: the training process imports it. The app calls these from a worker thread.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from advisor.answers import Answers, answers_to_dict
from advisor.data_probe import find_overlap
from advisor.model_profile import check_model_source
from advisor.plan import make_plan
from advisor.recommend import Recommendation, gather_inputs, recommend
from knowledge.architectures import load_architectures
from knowledge.errors import InputError
from runner.builtin_models import builtin_model, ensure_builtin
from runner.distributed import is_distributed, launch_summary, write_launch_files
from runner.events import read_events
from runner.launch import start_worker, wait_for_exit_after_done
from runner.model import causal_lm_support
from runner.plan import Plan
from runner.rundir import RunDir, create_run_dir, open_run_dir

__all__ = ["MIN_FREE_DISK_GB", "StartedRun", "create_run", "plan_run", "resume_run", "start_run"]

Say = Callable[[str], None]

#: Free disk below this in the runs folder is refused before anything starts.
MIN_FREE_DISK_GB = 1.0


@dataclass
class StartedRun:
    run: RunDir
    proc: subprocess.Popen[bytes]
    plan: Plan
    lines: list[str] = field(default_factory=list)
    """What to tell the user: the run directory, and the commands for the other machines of a multi-node run."""


def plan_run(answers: Answers, *, allow_network: bool = True, check_model: bool = True,
             say: Say | None = None) -> tuple[Recommendation, Plan]:
    """The recommendation and the plan for a training run, after the checks that must pass before one starts:
    every example usable (the file and line otherwise), no test example that is also a training example, and,
    for a local model, a folder it can load (a built-in model is converted into its folder the first time)."""
    inputs = gather_inputs(answers, allow_network=allow_network)
    for profile in (inputs.data, inputs.test_data):
        if profile is not None and profile.errors:
            first = next(p for p in profile.problems if p.severity == "error")
            raise InputError(f"{profile.errors} example(s) cannot be used; line {first.line}: {first.message}",
                             file=profile.file, line=first.line,
                             hint=f"fix them; finetune-advisor inspect-data {profile.file} lists all")
    if inputs.data is not None and inputs.test_data is not None:
        for leak in find_overlap(inputs.data, inputs.test_data):
            raise InputError(leak.message, file=inputs.test_data.file, line=leak.line, key="data.test_path",
                             hint="remove those examples from the test file (or from the training file): a model "
                                  "tested on what it trained on looks better than it is")
    recommendation = recommend(inputs)
    plan = make_plan(answers, recommendation)
    if check_model:
        builtin = builtin_model(answers.model.name_or_path)
        if builtin is not None:
            ensure_builtin(builtin, say)
        check_model_source(plan.model.name_or_path)
        model_type = recommendation.model.get("model_type")
        if model_type and not plan.model.trust_remote_code and not load_architectures().for_model_type(model_type)[1]:
            why = causal_lm_support(str(model_type))  # before the run directory: it would hold a run that cannot start
            if why:
                raise InputError(why, file=plan.model.name_or_path, key="model.name_or_path",
                                 hint="choose a causal language model this transformers supports (a newer "
                                      "transformers may know a new architecture)")
    return recommendation, plan


def create_run(answers: Answers, recommendation: Recommendation, plan: Plan, runs_dir: str) -> RunDir:
    """A new run directory with answers.yaml, recommendation.json and plan.json (and, for several processes,
    the accelerate files)."""
    run = create_run_dir(runs_dir, plan.method, plan.model.name_or_path)
    free = shutil.disk_usage(run.path).free / 1e9
    if free < MIN_FREE_DISK_GB:
        run.path.rmdir()  # still empty: nothing of the user's is in it
        raise InputError(f"only {free:.1f} GB free disk", file=runs_dir, key="--runs-dir",
                         hint="free some space or choose --runs-dir")
    data = answers_to_dict(answers)
    for key in ("path", "test_path", "validation_path"):  # the run keeps pointing at the same files
        if key in data["data"]:
            data["data"][key] = str(answers.resolve(data["data"][key]))
    run.answers.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    run.recommendation.write_text(json.dumps(recommendation.to_json(), indent=2, ensure_ascii=False),
                                  encoding="utf-8")
    run.plan.write_text(json.dumps(plan.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
    if is_distributed(plan):
        write_launch_files(plan, run.path, python=sys.executable)
    return run


def start_run(answers: Answers, runs_dir: str, *, allow_network: bool = True, say: Say | None = None) -> StartedRun:
    """Check, plan, create the run directory and start the training process."""
    recommendation, plan = plan_run(answers, allow_network=allow_network, say=say)
    run = create_run(answers, recommendation, plan, runs_dir)
    proc = start_worker(run)
    return StartedRun(run, proc, plan, [f"run directory: {run.path}", *launch_summary(plan, run.path)])


#: After a run's last event (done), how long resuming waits for its process to let go of the run directory.
LOCK_WAIT_AFTER_DONE_S = 60.0


def resume_run(path: str | Path) -> StartedRun:
    """Continue a stopped, killed or crashed run from its newest complete checkpoint."""
    run = open_run_dir(path)
    wait_for_exit_after_done(run)
    if run.worker_alive():
        raise InputError("this run is still training", file=str(path),
                         hint=f"follow it with: finetune-advisor attach {path}")
    events = read_events(run.events)
    if any(e.get("kind") == "done" and e.get("status") == "done" for e in events):
        raise InputError("this run finished training: there is nothing to resume, and resuming would train its "
                         "saved model again", file=str(path),
                         hint=f"evaluate it: finetune-advisor evaluate {path}; or train a new run with its answers")
    run.stop_request.unlink(missing_ok=True)
    plan = run.read_plan()
    ended = bool(events) and events[-1].get("kind") == "done"  # its process may still be exiting: give it time
    proc = start_worker(run, resume=True, lock_wait_s=LOCK_WAIT_AFTER_DONE_S if ended else 0.0)
    return StartedRun(run, proc, plan, [f"run directory: {run.path}", *launch_summary(plan, run.path)])
