"""The answers file v1: load, validate (errors name the key, its line and the allowed values), save, round-trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from advisor.answers import Answers, answers_to_dict, load_answers, save_answers
from knowledge.errors import InputError
from tests.conftest import EXAMPLES

GOOD = """\
version: 1
goal: knowledge
data:
  path: data/train.jsonl
  test_path: data/test.jsonl
  format: alpaca
model:
  name_or_path: Qwen/Qwen2.5-7B-Instruct
  params_b: 7.6
evaluation:
  metric: token_f1
seed: 3
hardware:
  gpus: [{name: "NVIDIA GeForce RTX 4090", memory_gb: 24}]
  ram_gb: 64
deploy: edge
priority: memory
overrides: {method: qlora, learning_rate: 0.0002, gradient_checkpointing: true, bits: 4}
"""


def write(tmp_path: Path, text: str, name: str = "answers.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_answers_file_loads_with_every_field(tmp_path: Path) -> None:
    a = load_answers(write(tmp_path, GOOD))
    assert a.goal == "knowledge" and a.deploy == "edge" and a.priority == "memory" and a.seed == 3
    assert a.data.format == "alpaca" and a.model.params_b == 7.6 and a.model.trust_remote_code is False
    assert a.hardware is not None and a.hardware.gpus[0].memory_gb == 24 and a.hardware.ram_gb == 64
    assert a.overrides == {"method": "qlora", "learning_rate": 0.0002, "gradient_checkpointing": True, "bits": 4}
    assert a.resolve("data/train.jsonl") == tmp_path / "data" / "train.jsonl"


def test_defaults_for_optional_sections(tmp_path: Path) -> None:
    a = load_answers(write(tmp_path, "version: 1\ngoal: style\ndata: {examples: 800}\nmodel: {name_or_path: gpt2}\n"))
    assert (a.deploy, a.priority, a.seed, a.hardware, a.overrides) == ("server", "balanced", 0, None, {})
    assert a.evaluation.metric == "auto" and a.evaluation.general_set == "builtin"


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    original = load_answers(write(tmp_path, GOOD))
    saved = save_answers(original, tmp_path / "copy.yaml")
    again = load_answers(saved)
    assert answers_to_dict(again) == answers_to_dict(original)


def _resolved(a: Answers) -> dict[str, Any]:
    """The answers as data, with data paths made absolute (saving elsewhere may rewrite them)."""
    out = answers_to_dict(a)
    out["data"] = {k: str(a.resolve(v)) if k in ("path", "test_path") else v for k, v in out["data"].items()}
    return out


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_example_round_trips(example: Path, tmp_path: Path) -> None:
    a = load_answers(example)
    assert _resolved(load_answers(save_answers(a, tmp_path / example.name))) == _resolved(a)


def test_save_never_overwrites_unless_asked_and_keeps_a_backup(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    a = load_answers(path)
    with pytest.raises(InputError, match="already exists"):
        save_answers(a, path)
    assert path.read_text() == GOOD
    save_answers(a, path, overwrite=True)
    assert (tmp_path / "answers.yaml.bak").read_text() == GOOD
    assert answers_to_dict(load_answers(path)) == answers_to_dict(a)


@pytest.mark.parametrize(
    ("edit", "key", "line", "words"),
    [
        (("goal: knowledge", "goal: poetry"), "goal", 2,
         ["'poetry' is not allowed", "style, knowledge, reasoning, agent"]),
        (("goal: knowledge\n", ""), "goal", None, ["missing", "one of: style"]),
        (("version: 1", "version: 2"), "version", 1, ["not a known version", "version: 1"]),
        (("seed: 3", "seed: -1"), "seed", 12, ["out of range"]),
        (("seed: 3", "seed: three"), "seed", 12, ["must be an integer"]),
        (("deploy: edge", "deploy: phone"), "deploy", 16, ["one of: server, edge"]),
        (("priority: memory", "priority: cheap"), "priority", 17, ["one of: balanced, quality, speed, memory"]),
        (("  format: alpaca", "  format: csv"), "data.format", 6, ["one of: alpaca, sharegpt, messages, text"]),
        (("  params_b: 7.6", "  params_b: big"), "model.params_b", 9, ["must be a number"]),
        (("memory_gb: 24", "memory_gb: -4"), "hardware.gpus[0].memory_gb", 14, ["out of range"]),
        (("metric: token_f1", "metric: bleu"), "evaluation.metric", 11, ["exact_match"]),
        (("seed: 3", "seed: 3\ncolour: blue"), "colour", 13, ["unknown key", "allowed here"]),
        (("method: qlora", "method: magic"), "overrides.method", 18, ["one of: full"]),
        (("learning_rate: 0.0002", "learning_rate: 5"), "overrides.learning_rate", 18, ["out of range"]),
        (("bits: 4", "bits: 3"), "overrides.bits", 18, ["one of: 4, 8, 16, 32"]),
        (("gradient_checkpointing: true", "gradient_checkpointing: yes please"), "overrides.gradient_checkpointing",
         18, ["true or false"]),
        (("  name_or_path: Qwen/Qwen2.5-7B-Instruct\n", ""), "model.name_or_path", 7, ["missing"]),
        (("  params_b: 7.6", "  params_b: 7.6\n  trust_remote_code: maybe"), "model.trust_remote_code", 10,
         ["true or false"]),
    ],
)
def test_validation_errors_name_key_line_and_allowed_values(tmp_path: Path, edit: tuple[str, str], key: str,
                                                             line: int | None, words: list[str]) -> None:
    assert edit[0] in GOOD, "the test's edit no longer applies"
    path = write(tmp_path, GOOD.replace(edit[0], edit[1], 1))
    with pytest.raises(InputError) as err:
        load_answers(path)
    message = str(err.value)
    assert err.value.key == key and err.value.file == str(path) and err.value.line == line
    assert f"{key}:" in message
    for word in words:
        assert word in message


def test_data_needs_a_path_or_a_count(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="give data.path .* or data.examples"):
        load_answers(write(tmp_path, "version: 1\ngoal: style\nmodel: {name_or_path: gpt2}\n"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the answers file is empty"),
        (b"version: 1\ngoal: [style\n", "not valid YAML"),
        (b"version: 1\ngoal: st\xffyle\n", "not UTF-8"),
        (b"- just\n- a list\n", "must be a mapping"),
        (b"version: 1\ngoal: !!python/object/apply:os.system ['echo hacked']\n", "not valid YAML"),
    ],
)
def test_unreadable_answers_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "a.yaml"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        load_answers(path)
    assert str(path) in str(err.value)


def test_yaml_syntax_errors_point_at_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\ngoal: style\ndata:\n  examples: 5\n   format: text\n")
    with pytest.raises(InputError) as err:
        load_answers(path)
    assert err.value.line == 5


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_answers(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="is a folder"):
        load_answers(tmp_path)


def test_a_missing_key_points_at_its_section(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\ngoal: style\ndata: {examples: 9}\nmodel: {name_or_path: gpt2}\n"
                           "hardware:\n  gpus:\n    - {name: A10}\n")
    with pytest.raises(InputError) as err:
        load_answers(path)
    assert err.value.key == "hardware.gpus[0].memory_gb" and err.value.line == 7


def test_saving_elsewhere_keeps_relative_data_paths_pointing_at_the_same_files(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    a = load_answers(write(tmp_path / "project", GOOD))
    moved = load_answers(save_answers(a, tmp_path / "elsewhere" / "answers.yaml"))
    assert moved.data.path is not None
    assert moved.resolve(moved.data.path) == tmp_path / "project" / "data" / "train.jsonl"


def test_scientific_notation_is_a_number_and_nan_or_inf_are_refused(tmp_path: Path) -> None:
    """YAML 1.1 reads `1e-4` as a string; it is the learning rate the user meant. NaN and infinity pass every
    range check, so they are refused by name (they crashed the worker or the output before)."""
    sci = load_answers(write(tmp_path, GOOD.replace("learning_rate: 0.0002", "learning_rate: 1e-4")))
    assert sci.overrides["learning_rate"] == 1e-4
    for edit, key in (("learning_rate: 0.0002", "learning_rate: .nan"), ("ram_gb: 64", "ram_gb: .inf"),
                      ("seed: 3", "seed: 99999999999999")):
        with pytest.raises(InputError) as err:
            load_answers(write(tmp_path, GOOD.replace(edit, key)))
        assert err.value.line is not None and err.value.key is not None


@pytest.mark.parametrize(("text", "message"), [
    (GOOD + "goal: style\n", "duplicate key 'goal' (first on line 2)"),
    ("a: &a [*a]\n" + GOOD, "recursive alias"),
    ("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)) + GOOD,
     "expands to more than 100,000 values"),
    (GOOD + "x: " + "[" * 100_000 + "]" * 100_000 + "\n", "nest"),
])
def test_duplicate_keys_alias_bombs_and_deep_nesting_are_refused_before_anything_is_built(
        tmp_path: Path, text: str, message: str) -> None:
    """Nine levels of nine aliases ran past 100 s and 7 GB; a recursive alias ended in a RecursionError; the
    last of two equal keys silently won."""
    with pytest.raises(InputError) as err:
        load_answers(write(tmp_path, text))
    assert message in str(err.value)
