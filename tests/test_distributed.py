"""Several GPUs and machines: the strategy choice, memory per GPU, the accelerate config and launch commands, and a
real 2-process CPU run through `accelerate launch` that matches a single process step for step."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from advisor.answers import answers_from_dict
from advisor.estimate import EstimateConfig, estimate_memory, estimate_time
from advisor.model_profile import profile_model
from advisor.plan import make_plan
from advisor.recommend import Recommendation, gather_inputs, recommend
from advisor.runs import create_run
from knowledge import load_distributed
from knowledge.errors import InputError
from runner.distributed import accelerate_config, deepspeed_config, launch_commands, launch_summary
from runner.events import read_events
from runner.plan import Plan, PlanData, PlanModel
from runner.rundir import RunDir
from tests.runner_helpers import qa_rows, write_data

H100 = {"name": "NVIDIA H100 80GB HBM3", "memory_gb": 80}
RTX = {"name": "NVIDIA GeForce RTX 4090", "memory_gb": 24}


def answers(tmp_path: Path, gpus: list[dict[str, Any]], *, model: str = "Qwen/Qwen2.5-1.5B-Instruct",
            nodes: int | None = None, main_address: str | None = None, **overrides: Any) -> Any:
    data = write_data(tmp_path / "qa.jsonl", qa_rows())
    hardware: dict[str, Any] = {"gpus": gpus, "ram_gb": 64}
    if nodes is not None:
        hardware["nodes"] = nodes
    if main_address is not None:
        hardware["main_address"] = main_address
    raw = {"version": 1, "goal": "knowledge", "data": {"path": str(data)}, "model": {"name_or_path": model},
           "hardware": hardware, "overrides": overrides}
    return answers_from_dict(raw, source=tmp_path / "answers.yaml")


def rec(a: Any) -> Recommendation:
    return recommend(gather_inputs(a, detect=False, allow_network=False))


def plan_and_run(tmp_path: Path, a: Any) -> tuple[Plan, RunDir]:
    recommendation = rec(a)
    plan = make_plan(a, recommendation)
    return plan, create_run(a, recommendation, plan, str(tmp_path / "runs"))


# --------------------------------------------------------------------------- the choice and the estimate

def test_one_gpu_trains_in_one_process_without_accelerate_files(tmp_path: Path) -> None:
    plan, run = plan_and_run(tmp_path, answers(tmp_path, [RTX]))
    assert plan.distributed["processes"] == 1 and plan.distributed["strategy"] is None
    assert not (run.path / "accelerate_config.yaml").exists() and not (run.path / "launch.sh").exists()
    assert launch_summary(plan, run.path) == []


def test_two_gpus_that_each_fit_the_model_train_with_ddp(tmp_path: Path) -> None:
    plan, run = plan_and_run(tmp_path, answers(tmp_path, [RTX, RTX]))
    dist = plan.distributed
    assert (dist["strategy"], dist["processes"], dist["nodes"]) == ("ddp", 2, 1)
    assert dist["global_batch"] == 2 * plan.hyperparameters["batch_size"] * \
        plan.hyperparameters["gradient_accumulation"]
    config = yaml.safe_load((run.path / "accelerate_config.yaml").read_text())
    assert config["distributed_type"] == "MULTI_GPU" and config["num_processes"] == 2
    assert config["num_machines"] == 1 and "main_process_ip" not in config
    assert isinstance(config["main_process_port"], int)
    [command] = launch_commands(plan, run.path)
    assert command[command.index("--machine_rank") + 1] == "0"
    assert command[-3:] == ["-m", "runner.worker", str(run.path.resolve())]
    assert shlex.join(command).split()[-1] in (run.path / "launch.sh").read_text()


def test_eight_gpus_shard_a_model_that_does_not_fit_one(tmp_path: Path) -> None:
    a = answers(tmp_path, [RTX] * 8, model="meta-llama/Llama-3.1-8B", method="full")
    result = rec(a)
    dist, memory = result.distributed, result.memory
    assert (dist["strategy"], dist["processes"]) == ("fsdp", 8) and memory["fits"]
    assert memory["estimated_gb"] + memory["uncertainty_gb"] <= 24 + 0.01  # per GPU
    plan, run = plan_and_run(tmp_path, a)
    fsdp = yaml.safe_load((run.path / "accelerate_config.yaml").read_text())
    assert fsdp["distributed_type"] == "FSDP" and fsdp["num_processes"] == 8
    assert fsdp["fsdp_config"]["fsdp_sharding_strategy"] == "FULL_SHARD"
    assert fsdp["fsdp_config"]["fsdp_use_orig_params"] is True  # peft: frozen and trained weights side by side
    assert fsdp["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"


def test_sharding_is_preferred_to_truncating_the_examples(tmp_path: Path) -> None:
    """One 24 GB GPU fits LoRA on an 8B model only with shorter sequences; two fit it whole with FSDP."""
    def long_answers(gpus: int) -> Any:
        a = answers(tmp_path, [RTX] * gpus, model="meta-llama/Llama-3.1-8B", method="lora")
        # mostly short examples and a few of about 4000 tokens: max_length 4096 may be shortened, with a warning
        rows = [{"instruction": f"Question {i}: " + "word " * (3000 if i < 3 else 300), "input": "",
                 "output": "ok " * 100} for i in range(100)]
        write_data(tmp_path / "qa.jsonl", rows)
        return a

    one = rec(long_answers(1))
    assert any("max_length shortened" in w for w in one.warnings)
    two = rec(long_answers(2))
    assert two.distributed["strategy"] == "fsdp" and two.memory["fits"]
    assert two.hyperparameters["max_length"] > one.hyperparameters["max_length"]
    assert not any("max_length shortened" in w for w in two.warnings)


def test_two_machines_get_one_launch_command_each(tmp_path: Path) -> None:
    a = answers(tmp_path, [H100] * 4, nodes=2, main_address="10.0.0.5:29400")
    plan, run = plan_and_run(tmp_path, a)
    assert plan.distributed["processes"] == 8 and plan.distributed["nodes"] == 2
    config = yaml.safe_load((run.path / "accelerate_config.yaml").read_text())
    assert (config["num_machines"], config["num_processes"], config["machine_rank"]) == (2, 8, 0)
    assert (config["main_process_ip"], config["main_process_port"]) == ("10.0.0.5", 29400)
    commands = launch_commands(plan, run.path)
    assert len(commands) == 2
    for rank, cmd in enumerate(commands):
        assert cmd[cmd.index("--machine_rank") + 1] == str(rank)
        assert cmd[cmd.index("--main_process_ip") + 1] == "10.0.0.5"
        assert cmd[cmd.index("--main_process_port") + 1] == "29400"
    script = (run.path / "launch.sh").read_text()
    assert "# machine 0" in script and "# machine 1" in script
    summary = "\n".join(launch_summary(plan, run.path))
    assert "machine 1: " in summary and "waits until every machine has joined" in summary


def test_two_machines_without_an_address_say_what_to_set(tmp_path: Path) -> None:
    result = rec(answers(tmp_path, [H100] * 2, nodes=2))
    assert any("hardware.main_address" in w for w in result.warnings)
    plan = make_plan(answers(tmp_path, [H100] * 2, nodes=2), result)
    assert "MAIN_NODE_ADDRESS" in launch_commands(plan, tmp_path)[1]


def test_deepspeed_strategies_write_a_zero_config_and_need_deepspeed(tmp_path: Path) -> None:
    a = answers(tmp_path, [H100] * 2, distributed="deepspeed_zero3")
    result = rec(a)
    assert result.distributed["strategy"] == "deepspeed_zero3"
    # make_plan refuses a DeepSpeed strategy without deepspeed installed (below): the configs need only this
    plan = Plan(goal="knowledge", method=result.method, method_family="lora", model=PlanModel("m"),
                data=PlanData("d"), hyperparameters=result.hyperparameters, distributed=result.distributed)
    config = accelerate_config(plan, deepspeed_file="/x/deepspeed_config.json")
    assert config["distributed_type"] == "DEEPSPEED"
    assert config["deepspeed_config"] == {"deepspeed_config_file": "/x/deepspeed_config.json", "zero3_init_flag": True}
    zero = deepspeed_config(plan)
    assert zero["zero_optimization"]["stage"] == 3 and zero["train_micro_batch_size_per_gpu"] == "auto"
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:  # refused before a run directory exists, naming the fix
        with pytest.raises(InputError) as err:
            make_plan(a, result)
        assert err.value.key == "overrides.distributed" and "pip install deepspeed" in (err.value.hint or "")


def test_memory_per_gpu_follows_what_each_strategy_shards() -> None:
    model = profile_model("meta-llama/Llama-3.1-8B", None, allow_network=False)
    def detail(processes: int = 1, strategy: str | None = None) -> dict[str, float]:
        cfg = EstimateConfig("full", batch_size=1, seq_len=1024, gradient_checkpointing=True, processes=processes,
                             strategy=strategy)
        return estimate_memory(model, cfg).detail

    one, ddp, zero2, zero3 = detail(), detail(8, "ddp"), detail(8, "fsdp_grad_op"), detail(8, "fsdp")
    weights = one["weights_quantized_or_blocks"] + one["weights_unquantized"]
    # DDP replicates everything and adds its gradient buckets (one more copy of the gradients)
    assert ddp["optimizer_states"] == one["optimizer_states"] and ddp["ddp_gradient_buckets"] == one["gradients"]
    # ZeRO-2: optimizer states and gradients split 8 ways, weights whole
    assert zero2["optimizer_states"] == pytest.approx(one["optimizer_states"] / 8, abs=2e-3)
    assert zero2["gradients"] == pytest.approx(one["gradients"] / 8, abs=2e-3)
    assert zero2["weights_quantized_or_blocks"] == one["weights_quantized_or_blocks"]
    # ZeRO-3 / FSDP full shard: the weights too, plus two gathered blocks (the current one and the prefetched next)
    block_gb = (model.block_linear_params + model.block_other_params) * 2 / 1e9
    assert zero3["weights_quantized_or_blocks"] + zero3["weights_unquantized"] == pytest.approx(weights / 8, abs=2e-3)
    assert zero3["gathered_blocks"] == pytest.approx(2 * block_gb, abs=2e-3)


def test_quantized_bases_cannot_be_sharded() -> None:
    model = profile_model("meta-llama/Llama-3.1-8B", None, allow_network=False)
    with pytest.raises(InputError) as err:
        estimate_memory(model, EstimateConfig("qlora", processes=2, strategy="fsdp"))
    assert err.value.key == "distributed" and "ddp" in (err.value.hint or "")
    assert "qlora" in load_distributed().not_shardable


def test_more_processes_train_faster_at_the_stated_scaling() -> None:
    model = profile_model("Qwen/Qwen2.5-1.5B-Instruct", None, allow_network=False)
    one = estimate_time(model, EstimateConfig("lora"), tokens=10**7, device_name="H100")
    eight = estimate_time(model, EstimateConfig("lora", processes=8, strategy="ddp"), tokens=10**7, device_name="H100")
    two_machines = estimate_time(model, EstimateConfig("lora", processes=8, strategy="ddp", machines=2),
                                 tokens=10**7, device_name="H100")
    k = load_distributed()
    assert eight.flops_per_s == pytest.approx(one.flops_per_s * 8 * k.efficiency_ddp)
    assert two_machines.flops_per_s == pytest.approx(eight.flops_per_s * k.efficiency_across_machines)
    assert "8 processes" in eight.formula


def test_one_gpu_too_small_suggests_how_many_to_shard_over(tmp_path: Path) -> None:
    result = rec(answers(tmp_path, [RTX], model="meta-llama/Llama-3.1-8B", method="full"))
    assert not result.memory["fits"]
    [hint] = [w for w in result.warnings if w.startswith("scale out")]
    assert "FSDP" in hint and "hardware.gpus" in hint


def test_cpu_processes_share_the_machines_ram(tmp_path: Path) -> None:
    one = rec(answers(tmp_path, []))
    two = rec(answers(tmp_path, [], processes_per_node=2))
    assert two.memory["available_gb"] == pytest.approx(one.memory["available_gb"] / 2, abs=0.01)
    assert two.distributed["processes"] == 2 and two.distributed["strategy"] == "ddp"


@pytest.mark.parametrize(("hardware", "overrides", "key"), [
    ({"gpus": [RTX], "nodes": 0}, {}, "hardware.nodes"),
    ({"gpus": [RTX], "nodes": 2, "main_address": "10.0.0.5:http"}, {}, "hardware.main_address"),
    ({"gpus": [RTX]}, {"distributed": "zero9"}, "overrides.distributed"),
])
def test_bad_distributed_answers_name_the_key(tmp_path: Path, hardware: dict[str, Any], overrides: dict[str, Any],
                                              key: str) -> None:
    raw = {"version": 1, "goal": "knowledge", "model": {"name_or_path": "Qwen/Qwen2.5-1.5B-Instruct"},
           "data": {"examples": 1000}, "hardware": hardware, "overrides": overrides}
    with pytest.raises(InputError) as err:
        answers_from_dict(raw)
    assert err.value.key == key


def test_more_processes_than_gpus_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        rec(answers(tmp_path, [RTX, RTX], processes_per_node=4))
    assert err.value.key == "overrides.processes_per_node" and "2 GPU(s)" in err.value.message


def test_nodes_and_address_round_trip_through_the_answers_file(tmp_path: Path) -> None:
    from advisor.answers import answers_to_dict

    a = answers(tmp_path, [H100] * 8, nodes=4, main_address="node0.cluster:29500")
    back = answers_from_dict(answers_to_dict(a))
    assert back.hardware is not None and (back.hardware.nodes, back.hardware.main_address) == (4, "node0.cluster:29500")
    assert len(back.hardware.gpus) == 8


# --------------------------------------------------------------------------- a real run on two CPU processes

SCRIPT = Path(sys.executable).parent / "finetune-advisor"


def train_losses(tmp_path: Path, model: Path, data: Path, processes: int) -> tuple[list[float], dict[str, Any]]:
    """`finetune-advisor train` with `processes` CPU processes and a global batch of 4: the loss of every step."""
    raw = {"version": 1, "goal": "knowledge", "data": {"path": str(data)}, "model": {"name_or_path": str(model)},
           "hardware": {"gpus": [], "ram_gb": 16},
           "overrides": {"method": "lora", "learning_rate": 5e-3, "max_steps": 6, "save_steps": 3,
                         "batch_size": 4 // processes, "gradient_accumulation": 1, "processes_per_node": processes}}
    folder = tmp_path / f"p{processes}"
    folder.mkdir()
    (folder / "answers.yaml").write_text(yaml.safe_dump(raw))
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}
    result = subprocess.run([str(SCRIPT), "train", "--answers", "answers.yaml"], cwd=folder, capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    [run] = list((folder / "runs").iterdir())
    events = read_events(run / "events.jsonl")
    done = events[-1]
    assert done["kind"] == "done" and done["status"] == "done", done
    assert (run / "adapter" / "adapter_config.json").exists()
    return [e["loss"] for e in events if e["kind"] == "step"], {"done": done, "run": run, "stdout": result.stdout}


def test_two_cpu_processes_through_accelerate_match_one_process(tmp_path: Path) -> None:
    """LoRA on the tiny model, global batch 4: 2 gloo processes x 2 examples against 1 process x 4 examples.

    The distributed sampler hands the two processes the two halves of the single process's batch, and the loss is
    averaged over the same tokens, so the trajectories agree to float rounding: within 1e-3 relative each step.
    """
    from runner.tiny_model import build_tiny_model
    from tests.runner_helpers import tiny_texts

    model = build_tiny_model(tmp_path / "model", tiny_texts())
    data = write_data(tmp_path / "qa.jsonl", qa_rows())
    single, one = train_losses(tmp_path, model, data, 1)
    double, two = train_losses(tmp_path, model, data, 2)
    assert len(single) == len(double) == 6
    assert double == pytest.approx(single, rel=1e-3)
    # two processes ran, and between them trained on every token the single process did
    assert two["done"]["processes"] == 2 and two["done"]["tokens"] == one["done"]["tokens"]
    config = yaml.safe_load((two["run"] / "accelerate_config.yaml").read_text())
    assert config["num_processes"] == 2 and config["distributed_type"] == "MULTI_GPU"
    assert "2 training processes (DDP (data parallel)) through accelerate launch" in two["stdout"]


def test_the_estimate_command_takes_processes_and_a_strategy(run_cli: Any) -> None:
    args = ("estimate", "--model", "meta-llama/Llama-3.1-8B", "--method", "full", "--device", "cuda", "--gpu", "H100",
            "--gradient-checkpointing", "--offline", "--json")
    code, out, _ = run_cli(*args)
    one = json.loads(out)
    code8, out8, _ = run_cli(*args, "--processes", "8", "--distributed", "fsdp")
    eight = json.loads(out8)
    assert code == code8 == 0 and eight["estimated_gb"] < one["estimated_gb"] / 4
    assert any("FSDP full shard" in a and "8 processes" in a for a in eight["assumptions"])
    bad, _, err = run_cli(*args[:4], "qlora", *args[5:], "--processes", "2", "--distributed", "fsdp")
    assert bad == 2 and "cannot be sharded" in err and "Traceback" not in err
