"""The data probe: layouts and containers, lengths, and every problem reported with its line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from advisor.data_probe import find_overlap, probe_file
from knowledge.errors import InputError
from tests.conftest import write_jsonl

ALPACA = [{"instruction": f"What is {i} + {i}?", "input": "", "output": str(2 * i)} for i in range(10)]


@pytest.mark.parametrize(
    ("rows", "layout", "prompt_mean", "response_mean"),
    [
        ([{"instruction": "Say hi", "input": "to Bo", "output": "Hi Bo"}], "alpaca", len("Say hi\n\nto Bo"), 5),
        ([{"conversations": [{"from": "human", "value": "Hello"}, {"from": "gpt", "value": "Hi!"}]}],
         "sharegpt", 5, 3),
        ([{"messages": [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hello"},
                        {"role": "assistant", "content": "Hi!"}]}], "messages", len("Be brief\nHello"), 3),
        ([{"text": "Once upon a time"}], "text", 0, 16),
    ],
)
def test_layouts_are_detected_and_measured(tmp_path: Path, rows: list[dict[str, object]], layout: str,
                                           prompt_mean: int, response_mean: int) -> None:
    profile = probe_file(write_jsonl(tmp_path / "d.jsonl", rows))
    assert profile.layout == layout and profile.examples == 1 and not profile.problems
    assert profile.prompt_chars is not None and profile.prompt_chars.mean == prompt_mean
    assert profile.response_chars is not None and profile.response_chars.mean == response_mean


def test_tool_calls_count_as_the_assistant_answer(tmp_path: Path) -> None:
    call = [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]
    turns = [{"role": "user", "content": "x"}, {"role": "assistant", "content": None, "tool_calls": call}]
    rows = [{"messages": turns}]
    profile = probe_file(write_jsonl(tmp_path / "d.jsonl", rows))
    assert profile.examples == 1 and profile.response_chars is not None
    assert profile.response_chars.max == len('{"arguments": {}, "name": "f"}')  # the call as the model writes it


def test_tool_calls_become_name_and_parsed_arguments() -> None:
    from runner.records import to_messages

    call = [{"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]
    messages = to_messages({"messages": [{"role": "user", "content": "Weather?"},
                                         {"role": "assistant", "content": None, "tool_calls": call}]}, "messages")
    assert json.loads(messages[1]["content"]) == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    sharegpt = to_messages({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]},
                           "sharegpt")
    assert [m["role"] for m in sharegpt] == ["user", "assistant"]
    with pytest.raises(ValueError, match="unknown from 'robot'"):
        to_messages({"conversations": [{"from": "robot", "value": "x"}]}, "sharegpt")


def test_counts_coverage_and_percentiles(tmp_path: Path) -> None:
    rows = [{"instruction": "q" * n, "output": "a" * n} for n in range(1, 101)]
    profile = probe_file(write_jsonl(tmp_path / "d.jsonl", rows))
    assert profile.examples == profile.records == 100
    assert profile.field_coverage == {"instruction": 1.0, "output": 1.0}
    s = profile.total_chars
    assert s is not None and (s.p50, s.p95, s.p99, s.max) == (100, 190, 198, 200) and s.mean == 101.0


def test_json_csv_and_parquet_containers(tmp_path: Path) -> None:
    json_file = tmp_path / "d.json"
    json_file.write_text(json.dumps(ALPACA))
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("instruction,input,output\n" + "".join(f"\"q{i}, really\",,a{i}\n" for i in range(10)))
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet_file = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(ALPACA), parquet_file)
    for path, container in ((json_file, "json"), (csv_file, "csv"), (parquet_file, "parquet")):
        profile = probe_file(path)
        assert (profile.container, profile.layout, profile.examples) == (container, "alpaca", 10), path


def test_a_broken_line_is_reported_with_its_number_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    lines = [json.dumps(r) for r in ALPACA[:3]] + ['{"instruction": "x", "output": '] + [json.dumps(ALPACA[3])]
    path.write_text("\n".join(lines) + "\n")
    profile = probe_file(path)
    assert profile.examples == 4
    [problem] = profile.problems
    assert (problem.kind, problem.line, problem.severity) == ("broken_json", 4, "error")


def test_non_utf8_bytes_are_reported_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(json.dumps(ALPACA[0]).encode() + b"\n" + b'{"instruction": "caf\xe9", "output": "x"}\n')
    profile = probe_file(path)
    [problem] = profile.problems
    assert (problem.kind, problem.line) == ("not_utf8", 2) and "column 21" in problem.message
    assert profile.examples == 1


def test_missing_fields_and_empty_answers(tmp_path: Path) -> None:
    rows = [ALPACA[0], {"instruction": "no answer here"}, {"instruction": "blank", "output": "  "}, "just a string"]
    profile = probe_file(write_jsonl(tmp_path / "d.jsonl", rows), layout="alpaca")
    by_line = {p.line: p for p in profile.problems}
    assert by_line[2].kind == "missing_field" and "'output'" in by_line[2].message
    assert by_line[3].kind == "empty" and profile.empty == 1
    assert by_line[4].kind == "not_an_object"
    assert profile.examples == 1 and profile.errors == 3


def test_a_json_array_in_a_jsonl_file_is_read_and_flagged(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ALPACA, indent=2))
    profile = probe_file(path)
    assert profile.examples == 10 and profile.container == "json"
    assert [p.kind for p in profile.problems] == ["container"] and profile.problems[0].severity == "warning"


def test_a_3mb_line_is_profiled_quickly_and_flagged(tmp_path: Path) -> None:
    rows = [ALPACA[0], {"instruction": "summarise", "output": "x" * 3_000_000}, ALPACA[1]]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    start = time.perf_counter()
    profile = probe_file(path)
    assert time.perf_counter() - start < 5  # a generous bound: the point is that it does not hang
    assert profile.examples == 3
    [problem] = profile.problems
    assert (problem.kind, problem.line, problem.severity) == ("very_long", 2, "warning")


def test_duplicates_name_the_first_occurrence(tmp_path: Path) -> None:
    profile = probe_file(write_jsonl(tmp_path / "d.jsonl", [ALPACA[0], ALPACA[1], ALPACA[0]]))
    assert profile.duplicates == 1
    assert profile.problems[0].line == 3 and "line 1" in profile.problems[0].message


def test_leakage_between_train_and_test_files(tmp_path: Path) -> None:
    train = probe_file(write_jsonl(tmp_path / "train.jsonl", ALPACA))
    test = probe_file(write_jsonl(tmp_path / "test.jsonl",
                                  [{"instruction": "Brand new?", "output": "yes"}, ALPACA[4] | {"output": "other"}]))
    [problem] = find_overlap(train, test)
    assert problem.kind == "leakage" and problem.line == 2 and "1 example(s)" in problem.message
    assert find_overlap(train, probe_file(write_jsonl(tmp_path / "t2.jsonl", [{"text": "unrelated"}]))) == []


def test_problems_are_capped_but_counted(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ALPACA[0]) + "\n" + "not json\n" * 500)
    profile = probe_file(path)
    assert profile.problem_counts == {"broken_json": 500} and len(profile.problems) == 50


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jsonl", b"", "the file is empty"),
        ("blank.jsonl", b"\n\n  \n", "no examples in the file"),
        ("odd.jsonl", json.dumps({"question": "q", "answer": "a"}).encode() + b"\n", "cannot tell the layout"),
        ("data.txt", b"hello world\n", "unknown file type"),
        ("bad.json", b'[{"instruction": "x",\n "output": }]', "not valid JSON"),
    ],
)
def test_files_that_cannot_be_profiled(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        probe_file(path)
    assert str(path) in str(err.value)


def test_missing_file_and_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        probe_file(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="unknown layout"):
        probe_file(write_jsonl(tmp_path / "d.jsonl", ALPACA), layout="chatml")


def test_token_counts_with_a_tokenizer(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = tmp_path / "model"
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    rows = [{"text": "hello world hello"}, {"text": "world"}]
    profile = probe_file(write_jsonl(tmp_path / "d.jsonl", rows), tokenizer=str(folder))
    assert profile.total_tokens is not None and profile.total_tokens.max == 3 and profile.total_tokens.p50 == 1


def test_a_byte_order_mark_from_windows_editors_is_accepted(tmp_path: Path) -> None:
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + b'{"text": "hello"}\n{"text": "world"}\n')
    csv_file = tmp_path / "bom.csv"
    csv_file.write_bytes(b"\xef\xbb\xbfinstruction,output\r\nq,a\r\n")
    assert probe_file(jsonl).examples == 2 and not probe_file(jsonl).problems
    assert probe_file(csv_file).layout == "alpaca"


def test_a_compressed_file_is_named_for_what_it_is(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "train.jsonl"
    path.write_bytes(gzip.compress(b'{"text": "x"}\n'))
    with pytest.raises(InputError, match="gzip-compressed: decompress it first"):
        probe_file(path)


@pytest.mark.parametrize(("content", "message"), [
    ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "nested too deeply"),
    ('{"instruction": "x", "output": ' + "9" * 5000 + "}\n", "a number too long to read"),
    ('{"instruction": "\\ud800", "output": "y"}\n', "lone UTF-16 surrogate"),
])
def test_lines_json_cannot_hold_are_reported_by_line_not_a_traceback(tmp_path: Path, content: str,
                                                                     message: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(content + '{"instruction": "q", "output": "a"}\n', encoding="utf-8")
    profile = probe_file(path)
    assert profile.examples == 1
    assert any(p.line == 1 and message in p.message for p in profile.problems), profile.problems


def test_a_jsonl_whose_first_line_is_a_list_names_each_line(tmp_path: Path) -> None:
    """It was read as one JSON array and reported as 'line 2: Extra data'."""
    path = tmp_path / "d.jsonl"
    path.write_text('[1, 2]\n"str"\n{"instruction": "q", "output": "a"}\n', encoding="utf-8")
    profile = probe_file(path)
    lines = {p.line: p.message for p in profile.problems}
    assert "got list" in lines[1] and "got str" in lines[2] and profile.examples == 1


def test_pipes_symlink_loops_and_long_names_are_named_for_what_they_are(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "f.jsonl"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(loop)
    for path, message in ((fifo, "not a regular file"), (loop, "symbolic links"),
                          (tmp_path / ("x" * 300 + ".jsonl"), "too long")):
        with pytest.raises(InputError) as err:
            probe_file(path)
        assert message in str(err.value), str(err.value)


def test_a_parquet_file_with_a_corrupt_page_is_named_not_a_traceback(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"instruction": [f"q{i}" for i in range(1000)],
                             "output": [f"a{i}" for i in range(1000)]}), path)
    damaged = bytearray(path.read_bytes())
    for i in range(200, 2000):
        damaged[i] = (damaged[i] * 7 + 13) % 256
    path.write_bytes(bytes(damaged))
    with pytest.raises(InputError, match="damaged|not a readable Parquet"):
        probe_file(path)
