"""The training process: `python -m runner.worker RUN_DIR [--resume]`.

Started by `finetune-advisor train` in its own session, so closing the terminal or losing the SSH
connection does not stop it. SIGINT or SIGTERM (or a STOP file in the run directory) makes it save a
checkpoint and stop (under `accelerate launch`, every process stops at the same step);
`finetune-advisor train --resume RUN_DIR` continues from there.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

from runner.distributed import process_rank
from runner.rundir import RunDir
from runner.train import StopFlag, run_training


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    resume = "--resume" in args
    paths = [a for a in args if a != "--resume"]
    if len(paths) != 1:
        sys.stderr.write("usage: python -m runner.worker RUN_DIR [--resume]\n")
        return 2
    run = RunDir(paths[0])
    if process_rank()[0] == 0:  # under accelerate launch the first process stands for the run
        run.pid.write_text(f"{os.getpid()}\n")
    stop = StopFlag(run)

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal is not a reason to stop
    return run_training(run, resume=resume, stop=stop)


if __name__ == "__main__":
    sys.exit(main())
