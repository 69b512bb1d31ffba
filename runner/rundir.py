"""The run directory (ARCHITECTURE.md): runs/<UTC time>-<method>-<short name>/, created once, never overwritten."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from knowledge.errors import InputError
from knowledge.methods import MethodCard
from runner.plan import Plan, read_plan

__all__ = ["RunDir", "create_run_dir", "open_run_dir"]


class RunDir:
    """Paths inside one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def answers(self) -> Path:
        return self.path / "answers.yaml"

    @property
    def recommendation(self) -> Path:
        return self.path / "recommendation.json"

    @property
    def plan(self) -> Path:
        return self.path / "plan.json"

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    @property
    def model(self) -> Path:
        return self.path / "model"

    @property
    def data(self) -> Path:
        return self.path / "data"

    def split(self, name: str) -> Path:
        """The saved split `name` (train, validation, test) that training and evaluation share."""
        return self.data / f"{name}.jsonl"

    @property
    def split_summary(self) -> Path:
        """How the splits were made: duplicates removed, and for knowledge the test facts seen in training."""
        return self.data / "split.json"

    def artifact(self, card: MethodCard) -> Path:
        """Where the trained result goes: model/ for methods that train the model's own weights, else adapter/."""
        return self.model if card.full_model else self.adapter

    @property
    def merged(self) -> Path:
        """The adapter merged into the 16-bit base (`export --merged`)."""
        return self.path / "merged"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    @property
    def tensorboard(self) -> Path:
        """The Trainer's TensorBoard logs (`tensorboard --logdir runs/` shows every run)."""
        return self.path / "tensorboard"

    @property
    def eval_lock(self) -> Path:
        """Held (flock) while a process evaluates the run: one evaluation at a time."""
        return self.path / "eval.lock"

    def predictions(self, which: str) -> Path:
        """Per-example outputs and scores of `which` (base or tuned) on the test split."""
        return self.eval_dir / f"predictions-{which}.jsonl"

    @property
    def report_json(self) -> Path:
        return self.path / "report.json"

    @property
    def report_md(self) -> Path:
        return self.path / "report.md"

    @property
    def loss_png(self) -> Path:
        return self.path / "loss.png"

    @property
    def pid(self) -> Path:
        return self.path / "worker.pid"

    @property
    def log(self) -> Path:
        return self.path / "worker.log"

    @property
    def eval_log(self) -> Path:
        """Third-party output of the evaluation (warnings, library logs), kept off the terminal."""
        return self.eval_dir / "evaluate.log"

    @property
    def export_log(self) -> Path:
        return self.path / "export.log"

    @property
    def lock(self) -> Path:
        """Held (flock) by the training process while it trains: one training process a run directory."""
        return self.path / "train.lock"

    @property
    def stop_request(self) -> Path:
        """Creating this file asks the training process to checkpoint and stop (the TUI's Stop action)."""
        return self.path / "STOP"

    def disk_full_advice(self) -> str:
        """What to do after the disk filled up under this run (said by the training process and its follower)."""
        return (f"free space where the run directory is ({self.path}), then continue from the last checkpoint "
                f"with: finetune-advisor train --resume {self.path}")

    def read_plan(self) -> Plan:
        return read_plan(self.plan)

    def read_json(self, path: Path) -> dict[str, Any]:
        """One of the run's JSON files (recommendation.json, report.json) as a mapping."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read it: {exc}", file=str(path),
                             hint="the run directory is damaged; evaluate it again, or start a new run") from None
        if not isinstance(data, dict):
            raise InputError(f"must be a JSON object, got {type(data).__name__}", file=str(path),
                             hint="the run directory is damaged; evaluate it again, or start a new run")
        return data

    def worker_alive(self) -> bool:
        """Whether a training process is still running in this run directory: the run's lock is held (a process
        that ended holds none, whatever became of its PID), or, for a run without a lock file, the process
        recorded in worker.pid is running."""
        if self.lock.exists():
            return self._lock_held()
        try:
            pid = int(self.pid.read_text().strip())
        except (OSError, ValueError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        try:  # a zombie (exited, not yet reaped) is not alive
            with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
                return f.read().split(")")[-1].split()[0] != "Z"
        except OSError:
            return True


    def _lock_held(self) -> bool:
        import fcntl

        try:
            fd = os.open(self.lock, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)


def safetensors_intact(path: Path) -> bool:
    """Whether a .safetensors file is whole: its header parses and its size is the header's end of data (a file
    cut short by a full disk or a kill during the save is not)."""
    try:
        with path.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if size <= 0 or size > 100_000_000:
                return False
            header = json.loads(f.read(size))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        return path.stat().st_size == 8 + size + end
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False


def saved_model_intact(folder: Path) -> bool:
    """Whether a saved model or adapter folder is whole: its config and every weights file (a kill -9 during
    the final save leaves it empty or cut short)."""
    if not ((folder / "adapter_config.json").is_file() or (folder / "config.json").is_file()):
        return False
    weights = list(folder.glob("*.safetensors"))
    return bool(weights) and all(safetensors_intact(f) for f in weights)


def _short(name: str) -> str:
    base = name.rstrip("/").split("/")[-1] or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base)[:40]


def create_run_dir(runs_dir: str | Path, method: str, model_name: str) -> RunDir:
    """A new, empty run directory; an existing one is never reused."""
    root = Path(runs_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, a file above it, no permission
        raise InputError(f"cannot create the runs folder: {exc.strerror}", file=str(root), key="--runs-dir",
                         hint="give a folder you can write to (it is created when missing)") from None
    if not root.is_dir():
        raise InputError("is a file, not a folder", file=str(root), key="--runs-dir",
                         hint="give a folder for the runs (it is created when missing)")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = f"{stamp}-{method}-{_short(model_name)}"
    for n in range(1, 1000):
        path = root / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"cannot create a run directory in it: {exc.strerror}", file=str(root),
                             key="--runs-dir", hint="give a folder you can write to") from None
        return RunDir(path)
    raise RuntimeError(f"could not create a new run directory under {root}")


def open_run_dir(path: str | Path) -> RunDir:
    """An existing run directory; InputError when it is not one."""
    run = RunDir(path)
    if not run.path.is_dir():
        raise InputError("no such run directory", file=str(path), hint="runs are under ./runs by default")
    if not run.plan.is_file():
        raise InputError("not a run directory (no plan.json)", file=str(path))
    return run
