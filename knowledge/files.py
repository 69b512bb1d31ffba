"""Reading one file of knowledge/: parsed, its version checked, as a Reader that raises KnowledgeError."""

from __future__ import annotations

from pathlib import Path

from knowledge.errors import KnowledgeError
from knowledge.reader import Reader, read_yaml_file

__all__ = ["KNOWLEDGE_DIR", "read_knowledge"]

KNOWLEDGE_DIR = Path(__file__).parent


def read_knowledge(name: str, *allowed: str) -> Reader:
    """knowledge/NAME as a Reader; `allowed` lists its top-level keys besides `version`."""
    data, lines = read_yaml_file(KNOWLEDGE_DIR / name, error=KnowledgeError)
    reader = Reader(data, file=name, lines=lines, error=KnowledgeError)
    if reader.get("version", int) != 1:
        reader.fail("only version 1 is known", "version")
    if allowed:
        reader.only("version", *allowed)
    return reader
