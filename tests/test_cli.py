"""The command line as a user meets it: exit codes, messages without tracebacks, JSON, light imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, ROOT, write_jsonl

SCRIPT = Path(sys.executable).parent / "finetune-advisor"


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_recommend_an_example_readable_and_json() -> None:
    readable = cli("recommend", "--answers", str(EXAMPLES / "knowledge.yaml"))
    assert readable.returncode == 0, readable.stderr
    assert "Recommended: LoRA" in readable.stdout and "Memory" in readable.stdout
    as_json = cli("recommend", "--answers", str(EXAMPLES / "knowledge.yaml"), "--json")
    assert json.loads(as_json.stdout)["method"] == "lora"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("version: 1\ngoal: poetry\ndata: {examples: 10}\nmodel: {name_or_path: gpt2}\n",
         ["bad.yaml:2", "goal", "'poetry' is not allowed", "style, knowledge"]),
        ("version: 1\ngoal: style\ndata: {examples: 10}\nmodel: {name_or_path: ./missing-model}\n",
         ["no such model folder"]),
        ("version: 1\ngoal: style\ndata: {path: nope.jsonl}\nmodel: {name_or_path: gpt2}\n",
         ["data.path", "nope.jsonl", "no such file"]),
        ("version: 1\ngoal: style\n  data: oops\n", ["bad.yaml:3", "not valid YAML"]),
    ],
)
def test_bad_answers_exit_2_with_a_message_and_no_traceback(tmp_path: Path, content: str, words: list[str]) -> None:
    (tmp_path / "bad.yaml").write_text(content)
    result = cli("recommend", "--answers", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stdout == ""
    for word in words:
        assert word in result.stderr


def test_missing_answers_file_and_bad_arguments_exit_2(tmp_path: Path) -> None:
    assert cli("recommend", "--answers", str(tmp_path / "none.yaml")).returncode == 2
    bad_arg = cli("estimate", "--model", "gpt2", "--method", "magic")
    assert bad_arg.returncode == 2 and "invalid choice" in bad_arg.stderr
    assert cli("estimate", "--model", "gpt2", "--method", "lora", "--batch-size", "0").returncode == 2
    for size in ("nan", "inf", "0", "-1"):  # each crashed with a traceback before
        bad_size = cli("estimate", "--model", "gpt2", "--method", "lora", f"--params-b={size}", "--offline")
        assert bad_size.returncode == 2 and "--params-b" in bad_size.stderr and "Traceback" not in bad_size.stderr


def test_estimate_json_and_an_impossible_configuration(tmp_path: Path) -> None:
    ok = cli("estimate", "--model", "meta-llama/Llama-3.2-3B-Instruct", "--method", "lora", "--batch-size", "4",
             "--seq-len", "768", "--lora-rank", "32", "--lora-targets", "q_proj,v_proj", "--device", "cuda",
             "--gpu", "NVIDIA H100 80GB HBM3", "--json")
    assert ok.returncode == 0, ok.stderr
    data: dict[str, Any] = json.loads(ok.stdout)
    assert {"estimated_gb", "breakdown", "trainable_params", "assumptions", "time"} <= set(data)
    assert data["trainable_params"] == 28 * 32 * ((3072 + 3072) + (3072 + 1024))
    bad = cli("estimate", "--model", "gpt2", "--method", "prefix", "--gradient-checkpointing")
    assert bad.returncode == 2 and "gradient checkpointing" in bad.stderr and "Traceback" not in bad.stderr
    readable = cli("estimate", "--model", "gpt2", "--method", "qlora", "--device", "cpu")
    assert readable.returncode == 0 and "peak memory" in readable.stdout


def test_inspect_data_reports_problems_by_line_and_exits_2(tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", [{"text": f"example {i}"} for i in range(5)])
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "fine"}\n{"text": \n')
    ok = cli("inspect-data", str(good))
    assert ok.returncode == 0 and "5 usable example(s)" in ok.stdout and "no problems found" in ok.stdout
    bad = cli("inspect-data", str(broken), "--json")
    assert bad.returncode == 2
    [problem] = json.loads(bad.stdout)["files"][0]["problems"]
    assert problem["line"] == 2 and problem["kind"] == "broken_json"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = cli("inspect-data", str(empty))
    assert result.returncode == 2 and "empty" in result.stderr and "Traceback" not in result.stderr


def test_inspect_data_finds_leakage_between_files(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": f"row {i}"} for i in range(5)])
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "row 2"}, {"text": "new"}])
    result = cli("inspect-data", str(train), str(test))
    assert result.returncode == 2 and "leakage" in result.stdout


def test_hardware_without_a_gpu_is_a_normal_case() -> None:
    result = cli("hardware", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ram_gb"] > 0 and data["cpu_cores"] >= 1 and data["disk_free_gb"] is not None
    if not data["gpus"]:
        assert data["device"] == "cpu" and data["notes"]
        assert "GPU: none" in cli("hardware").stdout


def test_no_command_prints_help() -> None:
    result = cli()
    assert result.returncode == 0 and "recommend" in result.stdout and "inspect-data" in result.stdout


def test_the_pure_path_imports_nothing_heavy() -> None:
    code = ("import sys, advisor.recommend, advisor.estimate, advisor.answers, advisor.cli, knowledge\n"
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'bitsandbytes', 'datasets', 'textual') "
            "if m in sys.modules]\nprint(','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_recommend_imports_nothing_heavy_end_to_end() -> None:
    code = ("import sys\nfrom advisor.cli import main\n"
            f"main(['recommend', '--answers', {str(EXAMPLES / 'style.yaml')!r}, '--json'])\n"
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'bitsandbytes', 'datasets', 'textual') "
            "if m in sys.modules]\nsys.stderr.write('HEAVY:' + ','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stderr.strip().endswith("HEAVY:")


@pytest.mark.parametrize("command", ["train", "replay"])
def test_a_test_file_that_overlaps_the_training_data_is_refused_before_a_run(tmp_path: Path, command: str) -> None:
    rows = [{"instruction": f"Question {i}?", "output": f"Answer {i}."} for i in range(30)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    answers = {"version": 1, "goal": "knowledge", "data": {"path": "train.jsonl", "test_path": "train.jsonl"},
               "model": {"name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct"}, "hardware": {"gpus": [], "ram_gb": 16}}
    (tmp_path / "a.yaml").write_text(json.dumps(answers))
    args = ["train", "--answers", "a.yaml"] if command == "train" else ["replay", "a.yaml"]
    result = cli(*args, "--offline", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "30 example(s)" in result.stderr and "data.test_path" in result.stderr and "remove those" in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_general_set_that_is_not_text_is_refused_before_training(tmp_path: Path) -> None:
    """It was checked only after training, and a relative path was read from the working directory."""
    folder = tmp_path / "project"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [{"instruction": f"Question {i}?", "output": f"Answer {i}."}
                                         for i in range(30)])
    (folder / "general.bin").write_bytes(bytes(range(256)) * 4)
    answers = {"version": 1, "goal": "knowledge", "data": {"path": "train.jsonl"},
               "model": {"name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct"}, "hardware": {"gpus": [], "ram_gb": 16},
               "evaluation": {"general_set": "general.bin"}}
    (folder / "a.yaml").write_text(json.dumps(answers))
    result = cli("train", "--answers", str(folder / "a.yaml"), "--offline", "--runs-dir", str(tmp_path / "runs"),
                 cwd=tmp_path)  # not the answers' folder: the relative path is the answers file's
    assert result.returncode == 2 and "evaluation.general_set" in result.stderr and "not UTF-8" in result.stderr
    assert str(folder / "general.bin") in result.stderr and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("model_type", "words"), [("no-such-architecture", "does not know model_type"),
                                                   ("t5", "not a causal language model")])
def test_an_unknown_model_type_is_refused_before_a_run_directory_exists(tmp_path: Path, model_type: str,
                                                                       words: str) -> None:
    from tests.conftest import TINY_LLAMA, write_model_folder

    model = write_model_folder(tmp_path / "model", {**TINY_LLAMA, "model_type": model_type})
    (model / "model.safetensors").write_bytes(b"")
    (model / "tokenizer_config.json").write_text("{}")
    write_jsonl(tmp_path / "train.jsonl", [{"instruction": f"Question {i}?", "output": f"Answer {i}."}
                                           for i in range(30)])
    answers = {"version": 1, "goal": "knowledge", "data": {"path": "train.jsonl"},
               "model": {"name_or_path": str(model)}, "hardware": {"gpus": [], "ram_gb": 16}}
    (tmp_path / "a.yaml").write_text(json.dumps(answers))
    result = cli("train", "--answers", "a.yaml", "--offline", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert words in result.stderr and "model.name_or_path" in result.stderr and str(model) in result.stderr
    assert not (tmp_path / "runs").exists()


def builtin_answers(folder: Path) -> Path:
    """folder/a.yaml: a knowledge run of 30 questions on the built-in model, on the CPU."""
    write_jsonl(folder / "train.jsonl", [{"instruction": f"Question {i}?", "output": f"Answer {i}."}
                                         for i in range(30)])
    answers = {"version": 1, "goal": "knowledge", "data": {"path": "train.jsonl"},
               "model": {"name_or_path": "builtin/SmolLM2-135M-Instruct"}, "hardware": {"gpus": [], "ram_gb": 16}}
    (folder / "a.yaml").write_text(json.dumps(answers))
    return folder / "a.yaml"


@pytest.mark.parametrize("where", ["runs.txt", "runs.txt/runs"])
def test_a_runs_dir_that_is_a_file_or_under_one_is_refused_by_name(tmp_path: Path, where: str) -> None:
    """Through the command, not only the function: train made the folder itself first, and crashed."""
    (tmp_path / "runs.txt").write_text("not a folder")
    builtin_answers(tmp_path)
    result = cli("train", "--answers", "a.yaml", "--offline", "--runs-dir", str(tmp_path / where), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "--runs-dir" in result.stderr and str(tmp_path / where) in result.stderr
    assert (tmp_path / "runs.txt").read_text() == "not a folder"


def test_answers_that_are_a_device_a_pipe_or_huge_are_refused_without_reading(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "huge.yaml").write_text("# " + "x" * 2_000_000 + "\n")
    for path, words in (("/dev/zero", "not a regular file"), (str(tmp_path / "pipe.yaml"), "not a regular file"),
                        (str(tmp_path / "huge.yaml"), "at most 1,000,000"),
                        (str(tmp_path / ("n" * 300 + ".yaml")), "cannot be opened")):
        result = cli("recommend", "--answers", path, "--offline")  # /dev/zero hung, reading forever
        assert result.returncode == 2 and "Traceback" not in result.stderr and words in result.stderr, result.stderr
        assert path in result.stderr


def test_a_cache_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("a file")
    builtin_answers(tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FINETUNE_ADVISOR_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([str(SCRIPT), "train", "--answers", "a.yaml", "--offline", "--runs-dir", "runs"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "FINETUNE_ADVISOR_CACHE" in result.stderr and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("args", "words"), [(["--batch-size", "99999999999999999999"], "from 1 to 1,024"),
                                             (["--lora-rank", "100000"], "from 1 to 1,024"),
                                             (["--processes", "2", "--nodes", "3"], "spread evenly")])
def test_estimate_bounds_its_numbers_as_the_answers_file_does(args: list[str], words: str) -> None:
    result = cli("estimate", "--model", "gpt2", "--params-b", "0.1", "--method", "lora", "--device", "cpu",
                 "--offline", *args)
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr


def test_a_plan_nested_too_deep_is_named(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "plan.json").write_text("[" * 100_000 + "]" * 100_000)
    for args in (["evaluate", str(run)], ["train", "--resume", str(run)]):
        result = cli(*args)
        assert result.returncode == 2 and "nested too deeply" in result.stderr and "Traceback" not in result.stderr


def test_a_damaged_report_or_recommendation_is_named_not_a_traceback(tmp_path: Path) -> None:
    from knowledge.errors import InputError
    from runner.rundir import RunDir

    run = RunDir(tmp_path)
    for content in ("", "[1, 2]", "{not json"):
        (tmp_path / "report.json").write_text(content)
        with pytest.raises(InputError) as err:
            run.read_json(tmp_path / "report.json")
        assert "report.json" in str(err.value) and "damaged" in str(err.value)


def test_pilot_methods_that_are_empty_are_refused_not_ignored(tmp_path: Path) -> None:
    answers = builtin_answers(tmp_path)
    for value in ("", ","):
        out = cli("pilot", str(answers), "--methods", value, "--dry-run", "--runs-dir", str(tmp_path / "runs"))
        assert out.returncode == 2 and "--methods" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "runs").exists()
