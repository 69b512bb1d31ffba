"""Training on several processes: the accelerate config and the `accelerate launch` commands of a run.

Pure (no torch): `finetune-advisor train` writes both into the run directory before anything starts:

    accelerate_config.yaml   the config of machine 0 (the others differ only in --machine_rank)
    deepspeed_config.json    the ZeRO settings, for the deepspeed strategies
    launch.sh                one command a machine; train runs machine 0's, and prints the others to start

CUDA runs use accelerate's multi-GPU launcher (torchrun) with DDP, FSDP or DeepSpeed. CPU runs use the same
launcher: each process trains on the CPU (TrainingArguments(use_cpu=True)), so accelerate picks the gloo backend.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from knowledge import load_distributed
from runner.plan import Plan

__all__ = ["accelerate_config", "deepspeed_config", "launch_commands", "write_launch_files", "is_distributed",
           "main_host_port", "process_rank", "launch_summary"]

FSDP_SHARDING = {"fsdp": "FULL_SHARD", "fsdp_grad_op": "SHARD_GRAD_OP"}
ZERO_STAGE = {"deepspeed_zero2": 2, "deepspeed_zero3": 3}


def is_distributed(plan: Plan) -> bool:
    return int(plan.distributed.get("processes", 1)) > 1


def main_host_port(dist: dict[str, Any]) -> tuple[str, int]:
    """Machine 0's address: hardware.main_address, or this machine for a single-machine run."""
    port = load_distributed().main_process_port
    address = dist.get("main_address") or ""
    if not address:
        return ("127.0.0.1" if int(dist.get("nodes", 1)) == 1 else "MAIN_NODE_ADDRESS"), port
    host, sep, port_text = address.rpartition(":")
    return (host, int(port_text)) if sep else (address, port)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accelerate_config(plan: Plan, *, deepspeed_file: str | None = None) -> dict[str, Any]:
    """The accelerate config (as `accelerate config` writes it) for machine 0 of the plan's run."""
    dist = plan.distributed
    strategy = dist.get("strategy") or "ddp"
    host, port = main_host_port(dist)
    nodes, processes = int(dist["nodes"]), int(dist["processes"])
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "distributed_type": "MULTI_GPU",
        "num_machines": nodes,
        "num_processes": processes,
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": "no",  # the trainer sets bf16 or fp16 from the GPU it finds (TrainingArguments)
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,  # CPU runs: torchrun starts the processes; the trainer itself selects the CPU and gloo
        "downcast_bf16": "no",
        "gpu_ids": "all",
        "tpu_use_cluster": False,
        "tpu_use_sudo": False,
        "tpu_env": [],
    }
    if nodes > 1:
        config.update(main_process_ip=host, main_process_port=port)
    else:  # a free port, so that two runs on one machine do not collide
        config["main_process_port"] = _free_port()
    if strategy in FSDP_SHARDING:
        config["distributed_type"] = "FSDP"
        config["fsdp_config"] = {
            "fsdp_version": 1,
            "fsdp_sharding_strategy": FSDP_SHARDING[strategy],
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",  # one unit a transformer block (_no_split_modules)
            "fsdp_backward_prefetch": "BACKWARD_PRE",
            "fsdp_forward_prefetch": False,
            "fsdp_offload_params": False,
            "fsdp_state_dict_type": "FULL_STATE_DICT",  # the saved adapter or model loads like any other
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_sync_module_states": True,
            "fsdp_use_orig_params": True,  # needed for frozen base weights next to trained adapters (peft)
            "fsdp_activation_checkpointing": False,  # the trainer's gradient checkpointing is used instead
        }
    elif strategy in ZERO_STAGE:
        config["distributed_type"] = "DEEPSPEED"
        config["deepspeed_config"] = {"deepspeed_config_file": deepspeed_file or "deepspeed_config.json",
                                      "zero3_init_flag": ZERO_STAGE[strategy] == 3}
    return config


def deepspeed_config(plan: Plan) -> dict[str, Any]:
    """A DeepSpeed config whose batch and precision settings defer to the trainer ("auto")."""
    stage = ZERO_STAGE[plan.distributed["strategy"]]
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True,
                            "reduce_bucket_size": "auto"}
    if stage == 3:
        zero.update(stage3_prefetch_bucket_size="auto", stage3_param_persistence_threshold="auto",
                    stage3_gather_16bit_weights_on_model_save=True)
    return {"train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
            "train_batch_size": "auto", "gradient_clipping": "auto", "zero_optimization": zero,
            "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"}}


def launch_commands(plan: Plan, run_dir: str | Path, *, python: str = "python",
                    resume: bool = False) -> list[list[str]]:
    """One `accelerate launch` command a machine (machine 0 first), each running the training worker."""
    dist = plan.distributed
    run = Path(run_dir).resolve()
    config = run / "accelerate_config.yaml"
    host, port = main_host_port(dist)
    commands = []
    for rank in range(int(dist["nodes"])):
        cmd = [python, "-m", "accelerate.commands.launch", "--config_file", str(config), "--machine_rank",
               str(rank)]
        if int(dist["nodes"]) > 1:  # given here too, so that a machine can be pointed elsewhere by editing one line
            cmd += ["--main_process_ip", host, "--main_process_port", str(port)]
        cmd += ["-m", "runner.worker", str(run)] + (["--resume"] if resume else [])
        commands.append(cmd)
    return commands


def write_launch_files(plan: Plan, run_dir: str | Path, *, python: str = "python") -> list[list[str]]:
    """accelerate_config.yaml (and deepspeed_config.json) plus launch.sh in the run directory; the commands."""
    run = Path(run_dir).resolve()
    strategy = plan.distributed.get("strategy") or "ddp"
    deepspeed_file = None
    if strategy in ZERO_STAGE:
        deepspeed_file = str(run / "deepspeed_config.json")
        Path(deepspeed_file).write_text(json.dumps(deepspeed_config(plan), indent=2) + "\n", encoding="utf-8")
    config = accelerate_config(plan, deepspeed_file=deepspeed_file)
    (run / "accelerate_config.yaml").write_text(
        "# written by finetune-advisor for this run: machine 0's settings (others: --machine_rank N)\n"
        + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    commands = launch_commands(plan, run, python=python)
    lines = ["#!/bin/sh", "# Start training: run machine N's line on machine N (machine 0 first). Every machine needs",
             "# this project, the model, the data and this run directory at the same paths (a shared filesystem,",
             "# or a copy made before starting).", ""]
    for rank, cmd in enumerate(commands):
        lines += [f"# machine {rank}", shlex.join(cmd), ""]
    (run / "launch.sh").write_text("\n".join(lines), encoding="utf-8")
    return commands


def process_rank() -> tuple[int, int, int]:
    """(rank, local rank, world size) of this training process; (0, 0, 1) outside `accelerate launch`."""
    def env(name: str, default: int) -> int:
        value = os.environ.get(name, "")
        return int(value) if value.isdigit() else default

    return env("RANK", 0), env("LOCAL_RANK", 0), env("WORLD_SIZE", 1)


def launch_summary(plan: Plan, run_dir: str | Path) -> list[str]:
    """What `train` tells the user about a run on several processes: how, where, and the other machines' commands."""
    if not is_distributed(plan):
        return []
    dist = plan.distributed
    run = Path(run_dir).resolve()
    strategy = load_distributed().strategies[dist.get("strategy") or "ddp"]
    lines = [f"{dist['processes']} training processes ({strategy.name}) through accelerate launch; config: "
             f"{run / 'accelerate_config.yaml'}"]
    commands = launch_commands(plan, run, python=sys.executable)
    if len(commands) > 1:
        host, port = main_host_port(dist)
        lines.append(f"this machine is machine 0 ({host}:{port}); it waits until every machine has joined. "
                     "Start the others (each needs the project, model, data and this run directory at the same paths):")
        lines += [f"  machine {rank}: {shlex.join(cmd)}" for rank, cmd in enumerate(commands) if rank > 0]
        lines.append(f"(all commands: {run / 'launch.sh'})")
    return lines
