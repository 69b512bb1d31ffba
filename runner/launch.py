"""The training process of a run directory: start it in a session of its own, ask it to stop, follow its
events. Pure: no torch import here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from knowledge.errors import InputError
from runner.data import prepare_splits
from runner.distributed import is_distributed, launch_commands
from runner.events import follow_events
from runner.rundir import RunDir, open_run_dir

__all__ = ["follow_run", "follow_with_stop", "lock_run", "request_stop", "start_worker", "wait_for_exit_after_done"]


def lock_run(run: RunDir, wait_s: float = 0.0) -> int:
    """An exclusive lock on the run directory (flock on run.lock), as an open file descriptor; InputError when
    another process holds it (after `wait_s` seconds of trying: a process that has finished may still be
    exiting). The training process inherits the descriptor, so the lock lasts as long as it trains and ends
    with it, however it ends."""
    import fcntl

    fd = os.open(run.lock, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.time() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            if time.time() >= deadline:
                os.close(fd)
                raise InputError("another process is training in this run directory", file=str(run.path),
                                 hint=f"follow it with: finetune-advisor attach {run.path}") from None
            time.sleep(0.2)


def start_worker(run: RunDir, *, resume: bool = False, lock_wait_s: float = 0.0) -> subprocess.Popen[bytes]:
    """The training process, in a session of its own (a closed terminal or SSH connection does not stop it),
    holding the run directory's lock."""
    lock = lock_run(run, lock_wait_s)
    try:
        return _start(run, resume, lock)
    finally:
        os.close(lock)  # the training process keeps its inherited copy, and with it the lock


def _start(run: RunDir, resume: bool, lock: int) -> subprocess.Popen[bytes]:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
           "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    plan = run.read_plan()
    if is_distributed(plan):
        # the data splits are written once, here, before the processes start and read them
        prepare_splits(plan, run)
        cmd = launch_commands(plan, run.path, python=sys.executable, resume=resume)[0]  # machine 0's
        env.setdefault("OMP_NUM_THREADS", "1")  # CPU processes share the cores; torchrun's default too
    else:
        cmd = [sys.executable, "-m", "runner.worker", str(run.path)] + (["--resume"] if resume else [])
    log = run.log.open("ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True, pass_fds=(lock,))
    log.close()
    run.pid.write_text(f"{proc.pid}\n")
    return proc


def request_stop(run: RunDir) -> bool:
    """Ask the training process to checkpoint and stop; False (and nothing written or signalled) when no training
    process runs there: the PID in worker.pid may belong to another program by now."""
    if not run.worker_alive():
        return False
    run.stop_request.touch()
    try:
        pid = int(run.pid.read_text().strip())
        os.kill(pid, signal.SIGINT)
    except (OSError, ValueError):
        pass
    return True


def follow_run(path: str | Path, on_event: Callable[[dict[str, Any]], None], *,
               proc: subprocess.Popen[bytes] | None = None) -> int:
    """Feed every event to `on_event` until the run ends; the exit code of the run.

    A process that dies without a `done` event (kill -9, out of host memory) ends the follow with 1."""
    run = open_run_dir(path)

    def alive() -> bool:
        if proc is not None:
            return proc.poll() is None
        return run.worker_alive()

    last: dict[str, Any] | None = None
    for event in follow_events(run.events, alive=alive):
        on_event(event)
        last = event
    if last is not None and last.get("kind") == "done":
        return int(last.get("exit_code", 0))
    tail = run.log.read_text(errors="replace").strip().splitlines()[-5:] if run.log.exists() else []
    if any("No space left on device" in line or "disk is full" in line for line in tail):
        why = f"the disk is full: {run.disk_full_advice()}"
    else:
        why = f"the training process ended without finishing (killed?); continue with: finetune-advisor train " \
              f"--resume {run.path}"
    message = why + ("\n" + "\n".join(tail) if tail else "")
    on_event({"kind": "error", "t": time.time(), "exit_code": 1, "message": message})
    return 1


def follow_with_stop(path: str, on_event: Callable[[dict[str, Any]], None], *, proc: subprocess.Popen[bytes] | None,
                     say: Callable[[str], None], stop_on_interrupt: bool = True) -> int:
    """follow_run, where Ctrl-C asks the training process to checkpoint and stop; a second Ctrl-C stops
    following (the stop stands). With `stop_on_interrupt` off, Ctrl-C leaves it running in the background.
    The run's exit code."""
    run = RunDir(path)
    interrupted = False
    while True:
        try:
            return follow_run(path, on_event, proc=proc)
        except KeyboardInterrupt:
            if interrupted:  # the stop was already asked for: it stands, whatever the second Ctrl-C meant
                say(f"the stop asked for stands: the run saves a checkpoint and stops on its own; follow it with: "
                    f"finetune-advisor attach {path}\ncontinue it later with: finetune-advisor train --resume {path}")
                return 0
            if not stop_on_interrupt:
                say(f"training continues in the background; follow it with: finetune-advisor attach {path}\n"
                    f"to stop it with a checkpoint: touch {run.stop_request}")
                return 0
            interrupted = True
            say("stopping after a checkpoint (Ctrl-C again to stop following; the stop stands)")
            request_stop(run)


def wait_for_exit_after_done(run: RunDir, timeout_s: float = 30) -> None:
    """A training process that wrote its `done` event may still be exiting: give it a moment."""
    from runner.events import read_events

    if not any(e.get("kind") == "done" for e in read_events(run.events)[-1:]):
        return
    deadline = time.time() + timeout_s
    while run.worker_alive() and time.time() < deadline:
        time.sleep(0.1)
