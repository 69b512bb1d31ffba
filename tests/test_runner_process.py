"""Training as its own process: the run directory, following, kill -9 and resume, a clean stop on request,
surviving a lost terminal, NaN losses, export, and bad input ending with exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from knowledge.errors import InputError
from runner.events import read_events
from runner.plan import Plan, PlanData, PlanModel
from runner.rundir import RunDir
from runner.tiny_model import build_tiny_model
from runner.train import oom_advice, run_training
from tests.runner_helpers import make_run, qa_rows, tiny_texts, train_to_the_end, write_data

SCRIPT = Path(sys.executable).parent / "finetune-advisor"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "llama", tiny_texts())


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_data(tmp_path_factory.mktemp("data") / "qa.jsonl", qa_rows())


def answers_file(tmp_path: Path, model: Path, data: Path | str, **overrides: Any) -> Path:
    raw = {"version": 1, "goal": "knowledge", "data": {"path": str(data)}, "model": {"name_or_path": str(model)},
           "hardware": {"gpus": [], "ram_gb": 16},
           "overrides": {"method": "lora", "learning_rate": 5e-3, "max_steps": 6, "save_steps": 3, **overrides}}
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


#: Heavier steps (32 examples each) so a signal reliably lands mid-run: about 3 s for 120 steps here.
SLOW = {"max_steps": 120, "batch_size": 16, "gradient_accumulation": 2, "learning_rate": 1e-3}


def cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=timeout)


def only_run(tmp_path: Path) -> RunDir:
    [path] = list((tmp_path / "runs").iterdir())
    return RunDir(path)


def wait_for(run: RunDir, predicate: Any, timeout: float = 120) -> list[dict[str, Any]]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        events = read_events(run.events)
        if predicate(events):
            return events
        time.sleep(0.1)
    raise AssertionError(f"timed out; events: {read_events(run.events)[-3:]}")


def test_train_writes_the_run_directory_and_follows_to_the_end(tmp_path: Path, model: Path, data: Path) -> None:
    result = cli("train", "--answers", str(answers_file(tmp_path, model, data)), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    run = only_run(tmp_path)
    assert run.path.name.endswith("-lora-llama")
    for name in ("answers.yaml", "recommendation.json", "plan.json", "events.jsonl", "adapter/adapter_config.json",
                 "data/train.jsonl", "data/validation.jsonl", "data/test.jsonl"):
        assert (run.path / name).exists(), name
    assert "done after 6 steps" in result.stdout
    kinds = [e["kind"] for e in read_events(run.events)]
    assert kinds.count("step") == 6 and kinds[-1] == "done" and "eval" in kinds
    step = next(e for e in read_events(run.events) if e["kind"] == "step")
    assert {"step", "epoch", "loss", "learning_rate", "tokens_per_s", "memory_gb"} <= set(step)
    again = cli("attach", str(run.path), cwd=tmp_path)
    assert again.returncode == 0 and "done after 6 steps" in again.stdout
    # resuming a finished run would train its saved model again (or, without checkpoints, from scratch over it)
    adapter = (run.path / "adapter" / "adapter_model.safetensors").read_bytes()
    resumed = cli("train", "--resume", str(run.path), cwd=tmp_path)
    assert resumed.returncode == 2 and "finished training" in resumed.stderr and "evaluate" in resumed.stderr
    assert [e["kind"] for e in read_events(run.events)].count("done") == 1
    assert (run.path / "adapter" / "adapter_model.safetensors").read_bytes() == adapter


def test_the_split_is_seeded_and_saved(tmp_path: Path, model: Path, data: Path) -> None:
    a = make_run(tmp_path / "a", model, "lora", data, max_steps=1)
    b = make_run(tmp_path / "b", model, "lora", data, max_steps=1)
    from runner.data import prepare_splits

    counts = prepare_splits(a.read_plan(), a)
    prepare_splits(b.read_plan(), b)
    assert counts == {"train": 32, "validation": 4, "test": 4}
    assert (a.data / "test.jsonl").read_text() == (b.data / "test.jsonl").read_text()
    train = {json.dumps(r["messages"]) for r in map(json.loads, (a.data / "train.jsonl").read_text().splitlines())}
    test = {json.dumps(r["messages"]) for r in map(json.loads, (a.data / "test.jsonl").read_text().splitlines())}
    assert not train & test


def _as_in_a_terminal() -> None:
    """Ctrl-C and hang-up as a terminal's foreground command has them: a suite started in the background (`&`
    ignores SIGINT) or under nohup (SIGHUP) would hand its children those signals ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def follow_in_foreground(tmp_path: Path, answers: Path, **popen: Any) -> tuple[subprocess.Popen[Any], RunDir]:
    """`finetune-advisor train` following its run, as in a terminal; returns once training has begun."""
    follower = subprocess.Popen([str(SCRIPT), "train", "--answers", str(answers)], cwd=tmp_path, env=ENV,
                                preexec_fn=_as_in_a_terminal, **popen)
    deadline = time.time() + 120
    while not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()):
        assert time.time() < deadline
        time.sleep(0.1)
    run = only_run(tmp_path)
    wait_for(run, lambda ev: any(e["kind"] == "step" for e in ev))
    return follower, run


def test_kill_9_mid_run_then_resume_finishes_with_the_same_steps(tmp_path: Path, model: Path, data: Path) -> None:
    answers = answers_file(tmp_path, model, data, **SLOW, save_steps=20)
    assert cli("train", "--answers", str(answers), "--detach", cwd=tmp_path).returncode == 0
    run = only_run(tmp_path)
    wait_for(run, lambda ev: any(e.get("phase") == "checkpoint" and e["step"] >= 20 for e in ev))
    os.kill(int(run.pid.read_text()), signal.SIGKILL)
    time.sleep(0.5)
    assert not any(e["kind"] == "done" for e in read_events(run.events))
    attach = cli("attach", str(run.path), cwd=tmp_path)
    assert attach.returncode == 1 and "--resume" in attach.stdout
    resumed = cli("train", "--resume", str(run.path), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    events = read_events(run.events)
    assert any(e.get("phase") == "resume" for e in events)
    assert events[-1]["status"] == "done" and events[-1]["steps"] == 120


def test_a_stop_request_checkpoints_and_resume_continues(tmp_path: Path, model: Path, data: Path) -> None:
    answers = answers_file(tmp_path, model, data, **SLOW, save_steps=1000)
    assert cli("train", "--answers", str(answers), "--detach", cwd=tmp_path).returncode == 0
    run = only_run(tmp_path)
    wait_for(run, lambda ev: any(e["kind"] == "step" and e["step"] >= 5 for e in ev))
    os.kill(int(run.pid.read_text()), signal.SIGINT)  # what Ctrl-C in `train` sends
    events = wait_for(run, lambda ev: any(e["kind"] == "done" for e in ev))
    done = events[-1]
    assert done["status"] == "stopped" and done["exit_code"] == 0 and done["steps"] < 120
    assert Path(done["checkpoint"]).name == f"checkpoint-{done['steps']}"
    from runner.events import EventLog
    from runner.launch import lock_run, wait_for_exit_after_done

    wait_for_exit_after_done(run)  # the stopped process has written its last event; let it exit
    held = lock_run(run, wait_s=60)  # as a second `train --resume` started together would hold it
    EventLog(run.events).emit("phase", phase="prepare", resume=True)  # and it has begun: no waiting for an exit
    try:
        second = cli("train", "--resume", str(run.path), cwd=tmp_path)
        assert second.returncode == 2 and "still training" in second.stderr
    finally:
        os.close(held)
    assert cli("train", "--resume", str(run.path), cwd=tmp_path).returncode == 0
    assert read_events(run.events)[-1]["steps"] == 120


def test_training_survives_the_loss_of_its_terminal(tmp_path: Path, model: Path, data: Path) -> None:
    answers = answers_file(tmp_path, model, data, **SLOW, save_steps=1000)
    follower, run = follow_in_foreground(tmp_path, answers, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
    os.killpg(follower.pid, signal.SIGHUP)  # the SSH connection drops: the terminal's session gets SIGHUP
    follower.wait(timeout=30)
    assert not any(e["kind"] == "done" for e in read_events(run.events)), "finished before the hang-up: no test"
    events = wait_for(run, lambda ev: any(e["kind"] == "done" for e in ev))
    assert events[-1]["status"] == "done" and events[-1]["steps"] == 120


def test_a_nan_loss_stops_the_run_with_an_explanation(tmp_path: Path, model: Path, data: Path) -> None:
    run = make_run(tmp_path, model, "full", data, max_steps=30)
    plan = run.read_plan()
    plan.hyperparameters["learning_rate"] = 1e30  # past what answers allow: diverges for certain
    run.plan.write_text(json.dumps(plan.to_json()))
    assert run_training(run) == 1
    done = read_events(run.events)[-1]
    assert done["status"] == "failed" and "NaN or infinite" in done["message"] and "Lower the learning rate" in \
        done["message"]
    assert done["steps"] < 30


def test_export_merges_into_the_16_bit_base(tmp_path: Path, model: Path, data: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from runner.export import export_merged

    run = make_run(tmp_path, model, "qlora", data, learning_rate=5e-3, max_steps=3)
    train_to_the_end(run)
    (run.path / "merged.tmp" / "partial").mkdir(parents=True)  # what a killed export leaves
    merged_path = export_merged(run.path)
    assert not (merged_path / "partial").exists() and not (run.path / "merged.tmp").exists()
    merged = AutoModelForCausalLM.from_pretrained(str(merged_path), dtype=torch.float32)
    assert not any("4bit" in type(m).__name__ for m in merged.modules())
    assert merged.dtype == torch.float32 and (merged_path / "tokenizer.json").exists()
    card = (merged_path / "README.md").read_text()  # the merged model's card says what it is
    assert "library_name: transformers" in card and "- merged" in card and "merged into the 16-bit base" in card
    base = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.bfloat16)
    adapter = PeftModel.from_pretrained(base, str(run.adapter))
    probe = torch.tensor([[5, 9, 30, 41]])
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=probe).logits, adapter(input_ids=probe).logits.float(), atol=0.1)
    with pytest.raises(InputError, match="already exported"):
        export_merged(run.path)


def test_export_refuses_prefix_adapters(tmp_path: Path, model: Path, data: Path) -> None:
    from knowledge.errors import InputError
    from runner.export import export_merged

    run = make_run(tmp_path, model, "p_tuning_v2", data, learning_rate=1e-2, max_steps=1)
    train_to_the_end(run)
    with pytest.raises(InputError, match="cannot be merged"):
        export_merged(run.path)


def test_oom_advice_names_the_cheapest_next_step() -> None:
    plan = Plan(goal="knowledge", method="lora", method_family="lora", model=PlanModel("m"), data=PlanData("d"),
                hyperparameters={"batch_size": 4, "gradient_accumulation": 4, "max_length": 1024})
    assert "batch_size: 2" in oom_advice(plan) and "gradient_accumulation: 8" in oom_advice(plan)
    plan.hyperparameters["batch_size"] = 1
    assert "gradient_checkpointing: true" in oom_advice(plan)
    plan.hyperparameters["gradient_checkpointing"] = True
    assert "method: qlora" in oom_advice(plan)
    plan.method = "qlora"
    assert "max_length: 512" in oom_advice(plan)


def _bad(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("missing file", ["no such file"]),
        ("malformed lines", ["line 2", "not valid JSON"]),
        ("empty dataset", ["empty"]),
        ("no response field", ["missing field 'output'"]),
        ("model folder without weights", ["no weights"]),
    ],
)
def test_bad_input_exits_2_before_training(tmp_path: Path, model: Path, case: str, words: list[str]) -> None:
    data: Path | str = _bad(tmp_path, "d.jsonl", "".join(json.dumps(r) + "\n" for r in qa_rows()))
    model_dir = model
    if case == "missing file":
        data = tmp_path / "nope.jsonl"
    elif case == "malformed lines":
        data = _bad(tmp_path, "d.jsonl", '{"instruction": "q", "output": "a"}\n{"instruction": \n')
    elif case == "empty dataset":
        data = _bad(tmp_path, "d.jsonl", "")
    elif case == "no response field":
        data = _bad(tmp_path, "d.jsonl", "".join(json.dumps({"instruction": f"q{i}"}) + "\n" for i in range(5)))
    elif case == "model folder without weights":
        model_dir = tmp_path / "noweights"
        model_dir.mkdir()
        (model_dir / "config.json").write_text((model / "config.json").read_text())
    answers = answers_file(tmp_path, model_dir, data)
    if case == "no response field":
        raw = yaml.safe_load(answers.read_text())
        raw["data"]["format"] = "alpaca"
        answers.write_text(yaml.safe_dump(raw))
    result = cli("train", "--answers", str(answers), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_every_example_longer_than_max_length_exits_2(tmp_path: Path, model: Path) -> None:
    rows = [{"instruction": "word " * 600 + f"question {i}", "output": f"answer {i}"} for i in range(12)]
    data = write_data(tmp_path / "long.jsonl", rows)
    result = cli("train", "--answers", str(answers_file(tmp_path, model, data, max_length=64)), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "every training example is longer than max_length 64" in result.stdout


def test_ctrl_c_in_train_stops_cleanly_with_a_checkpoint(tmp_path: Path, model: Path, data: Path) -> None:
    # far more steps than it will run: the run must still be training when Ctrl-C arrives (120 steps of the tiny
    # model can end between the first step event and the signal)
    answers = answers_file(tmp_path, model, data, **{**SLOW, "max_steps": 5000}, save_steps=10000)
    follower, run = follow_in_foreground(tmp_path, answers, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    follower.send_signal(signal.SIGINT)  # Ctrl-C reaches the follower; the training process has its own session
    out, err = follower.communicate(timeout=120)
    assert follower.returncode == 0, out + err
    assert "stopping after a checkpoint" in err and "stopped" in out
    done = read_events(run.events)[-1]
    assert done["status"] == "stopped" and (run.checkpoints / f"checkpoint-{done['steps']}").is_dir()


def test_out_of_gpu_memory_is_reported_with_the_next_step(tmp_path: Path, model: Path, data: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The OOM itself needs a GPU; what the run does with it is tested by raising the real exception type."""
    import torch
    from transformers import Trainer

    def out_of_memory(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Trainer, "train", out_of_memory)
    run = make_run(tmp_path, model, "lora", data, max_steps=2)
    assert run_training(run) == 1
    done = read_events(run.events)[-1]
    assert done["status"] == "failed" and done["message"].startswith("out of GPU memory: set overrides.batch_size: 2")


@pytest.mark.parametrize(("max_steps", "kept"), [(2, "1 checkpoint and"), (20, "3 checkpoints and")])
def test_too_little_disk_for_checkpoints_is_bad_input(tmp_path: Path, model: Path, data: Path, max_steps: int,
                                                      kept: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk asked for counts the checkpoints the run will write: a 2-step run saves once (at its end), a
    20-step run every 4 steps, keeping save_total_limit (2) and the one being written. Asking a 2-step run for
    three full checkpoints refused the real model's test on a machine with 5 GB free."""
    import shutil
    from collections import namedtuple

    run = make_run(tmp_path, model, "full", data, max_steps=max_steps, save_steps=4)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    assert run_training(run) == 2
    message = read_events(run.events)[-1]["message"]
    assert "not enough free disk for checkpoints" in message and f"({kept} the trained model)" in message


@pytest.mark.parametrize(("method", "needed_gb"), [("freeze", (4 + 0.8) * 3 + 4 + 0.2),
                                                  ("lora", (0.4 + 0.8) * 3 + 0.4 + 0.2)])
def test_the_disk_asked_for_is_what_the_checkpoints_hold(tmp_path: Path, method: str, needed_gb: float,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint holds the weights (all of them for freeze and full fine-tuning, else the trained ones) and
    AdamW's two states per trained weight. 1B parameters in fp32, 0.1B of them trained, 30 steps saved every
    10: three checkpoints (save_total_limit 2 and the one being written), and the final model."""
    import shutil
    from collections import namedtuple
    from types import SimpleNamespace

    from runner.train import _check_disk

    def weights(n: int, trained: bool) -> Any:
        return SimpleNamespace(numel=lambda: n, element_size=lambda: 4, requires_grad=trained)

    model = SimpleNamespace(parameters=lambda: [weights(900_000_000, False), weights(100_000_000, True)])
    plan = SimpleNamespace(method=method, training=SimpleNamespace(save_steps=10, save_total_limit=2))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(0, 0, needed_gb * 1e9 + 1e6))
    _check_disk(SimpleNamespace(path=tmp_path), plan, model, 30)  # type: ignore[arg-type]  # just enough: fits
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(0, 0, needed_gb * 1e9 - 1e6))
    with pytest.raises(InputError, match=rf"about {needed_gb:.1f} GB needed \(3 checkpoints and the trained model\)"):
        _check_disk(SimpleNamespace(path=tmp_path), plan, model, 30)  # type: ignore[arg-type]


@pytest.mark.gpu
def test_qlora_on_a_cuda_gpu_in_bf16(tmp_path: Path, model: Path, data: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    run = make_run(tmp_path, model, "qlora", data, max_steps=4, learning_rate=5e-3)
    train_to_the_end(run)
    events = read_events(run.events)
    model_phase = next(e for e in events if e.get("phase") == "model")
    assert model_phase["device"] == "cuda" and model_phase["dtype"] in ("bfloat16", "float16")
    assert events[-1]["peak_memory_gb"] > 0


def test_a_hub_model_that_cannot_be_fetched_is_refused_before_a_run_starts(tmp_path: Path, data: Path) -> None:
    answers = answers_file(tmp_path, Path("someone/not-downloaded-7b"), data)
    raw = yaml.safe_load(answers.read_text())
    raw["model"] = {"name_or_path": "someone/not-downloaded-7b", "params_b": 7}
    answers.write_text(yaml.safe_dump(raw))
    started = time.time()
    result = cli("train", "--answers", str(answers), cwd=tmp_path)
    assert result.returncode == 2 and "not downloaded here and cannot be fetched" in result.stderr
    assert time.time() - started < 30 and not (tmp_path / "runs").exists()


def test_a_damaged_latest_checkpoint_is_skipped_for_the_newest_whole_one(tmp_path: Path) -> None:
    """A full disk or a kill during the save cuts the newest checkpoint's weights short: resuming from it raised
    a raw SafetensorError. The newest whole checkpoint is used instead, and the skipped one named."""
    from runner.train import last_complete_checkpoint

    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    whole = len(header).to_bytes(8, "little") + header + b"\x00" * 8
    for step, weights, state in ((10, whole, "{}"), (20, whole[:-3], "{}"), (30, whole, "{trunc")):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(weights)
        (folder / "trainer_state.json").write_text(state)
    skipped: list[str] = []
    assert last_complete_checkpoint(tmp_path, skipped) == tmp_path / "checkpoint-10"
    assert skipped == ["checkpoint-30", "checkpoint-20"]


def test_a_torn_last_event_is_skipped_and_never_glued_to_the_next(tmp_path: Path) -> None:
    """A process killed mid-write (or a full disk) left half a line; the resumed run's first event was
    appended to it and lost with it. Bytes that are not UTF-8 do not stop the readers either."""
    from runner.events import EventLog

    path = tmp_path / "events.jsonl"
    EventLog(path).emit("phase", phase="train")
    with path.open("ab") as f:
        f.write(b'{"t": 1, "kind": "step", "st\\xff')
    EventLog(path).emit("phase", phase="resume")
    assert [e.get("phase") for e in read_events(path)] == ["train", "resume"]
    from runner.events import follow_events

    assert [e.get("phase") for e in follow_events(path, alive=lambda: False)] == ["train", "resume"]


def test_a_full_disk_is_recognised_through_the_errors_that_wrap_it() -> None:
    """A full disk mid-training named ENOSPC but not what to do: the run's message now says to free space
    and resume (run_training), for the error itself or one that wraps it (safetensors, torch.save)."""
    import errno

    from runner.train import _disk_full

    full = OSError(errno.ENOSPC, "No space left on device")
    try:
        try:
            raise full
        except OSError as inner:
            raise RuntimeError("failed to write checkpoint") from inner
    except RuntimeError as wrapped:
        assert _disk_full(wrapped)
    assert _disk_full(RuntimeError("[enforce fail] write: No space left on device"))
    assert not _disk_full(ValueError("shape mismatch")) and not _disk_full(OSError(errno.EACCES, "denied"))


def test_a_second_ctrl_c_says_the_stop_stands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two Ctrl-C 50 ms apart said 'training continues in the background' while the run was stopping."""
    import runner.launch as launch

    asked: list[Path] = []

    def interrupted(*a: Any, **k: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(launch, "follow_run", interrupted)
    monkeypatch.setattr(launch, "request_stop", lambda run: asked.append(run.path))
    said: list[str] = []
    assert launch.follow_with_stop(str(tmp_path), lambda e: None, proc=None, say=said.append) == 0
    assert len(asked) == 1 and "stopping after a checkpoint" in said[0]
    assert "stop asked for stands" in said[1] and "continues in the background" not in said[1]
    said.clear()
    assert launch.follow_with_stop(str(tmp_path), lambda e: None, proc=None, say=said.append,
                                   stop_on_interrupt=False) == 0
    assert len(asked) == 1 and "continues in the background" in said[0]
