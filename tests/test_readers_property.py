"""For any input, the readers return a parsed value or an InputError (exit 2, a message naming the place),
never another exception, within a time bound: the answers reader, the data readers and the model-config
reader. Settings: EXAMPLES examples per property, DEADLINE_MS per example (hypothesis fails a slower one)."""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.answers import load_answers
from advisor.data_probe import probe_file
from advisor.model_profile import profile_model
from knowledge.errors import InputError

EXAMPLES = 150
DEADLINE_MS = 2000
SETTINGS = settings(max_examples=EXAMPLES, deadline=DEADLINE_MS, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

#: JSON-like values, nested a few levels: what a hand-written file can hold.
leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(string.ascii_letters + "_", min_size=1, max_size=12), inner, max_size=5), max_leaves=20)
KEYS = ("version", "goal", "data", "model", "hardware", "overrides", "evaluation", "seed", "deploy", "priority")
answers_like = st.fixed_dictionaries({}, optional={k: values for k in KEYS}) | values
#: Texts near YAML: its punctuation, anchors, aliases, tags and numbers.
yamlish = st.lists(st.sampled_from(list("abc:-[]{},&*!|>'\"#\n .0123456789eE+") + ["nan", "inf", "<<", "goal",
                                                                               "version", "overrides", "\n  "]),
                   max_size=80).map("".join)


def _reads(call: Any) -> None:
    try:
        call()
    except InputError as exc:
        assert str(exc)


def _file(name: str, content: bytes) -> Path:
    folder = Path(tempfile.mkdtemp())
    path = folder / name
    path.write_bytes(content)
    return path


@SETTINGS
@given(answers_like)
def test_any_answers_structure_is_read_or_refused(raw: Any) -> None:
    import yaml

    _reads(lambda: load_answers(_file("a.yaml", yaml.safe_dump(raw, allow_unicode=True).encode())))


@SETTINGS
@given(yamlish)
def test_any_yaml_like_text_is_read_or_refused(text: str) -> None:
    _reads(lambda: load_answers(_file("a.yaml", text.encode())))


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_as_answers_are_read_or_refused(content: bytes) -> None:
    _reads(lambda: load_answers(_file("a.yaml", content)))


@SETTINGS
@given(st.lists(values, max_size=6), st.sampled_from(["d.jsonl", "d.json", "d.csv"]))
def test_any_records_are_profiled_or_refused(records: list[Any], name: str) -> None:
    if name == "d.jsonl":
        content = "\n".join(json.dumps(r) for r in records)
    elif name == "d.json":
        content = json.dumps(records)
    else:
        content = "\n".join(",".join(map(str, r)) if isinstance(r, list) else str(r) for r in records)
    _reads(lambda: probe_file(_file(name, content.encode())))


@SETTINGS
@given(st.binary(max_size=400), st.sampled_from(["d.jsonl", "d.json", "d.csv", "d.parquet"]))
def test_any_bytes_as_data_are_profiled_or_refused(content: bytes, name: str) -> None:
    _reads(lambda: probe_file(_file(name, content)))


@SETTINGS
@given(st.dictionaries(st.sampled_from(["model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                        "num_key_value_heads", "intermediate_size", "vocab_size", "head_dim",
                                        "tie_word_embeddings", "max_position_embeddings", "num_experts"]),
                       values, max_size=11))
def test_any_model_config_is_read_or_refused(config: dict[str, Any]) -> None:
    folder = Path(tempfile.mkdtemp())
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text("{}")
    _reads(lambda: profile_model(str(folder), allow_network=False))


VALID_CONFIG = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 100}


@SETTINGS
@given(st.sampled_from(["num_key_value_heads", "intermediate_size", "head_dim", "max_position_embeddings",
                        "num_experts", "num_experts_per_tok", "tie_word_embeddings", "text_config"]), values)
def test_a_valid_config_with_any_one_field_changed_is_read_or_refused(key: str, value: Any) -> None:
    """A string where a number belongs (head_dim, num_key_value_heads, intermediate_size) raised ValueError."""
    folder = Path(tempfile.mkdtemp())
    (folder / "config.json").write_text(json.dumps({**VALID_CONFIG, key: value}))
    (folder / "tokenizer.json").write_text("{}")
    _reads(lambda: profile_model(str(folder), allow_network=False))
