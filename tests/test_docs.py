"""README.md shows the decision table and the scorecard rules exactly as knowledge/ defines them."""

from __future__ import annotations

from advisor.docs import update
from tests.conftest import ROOT


def test_readme_and_knowledge_agree() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert update(text) == text, "README.md is out of date: run  .venv/bin/python -m advisor.docs README.md"


def test_the_generated_tables_name_every_rule() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for rule in ("S1", "K1", "R1", "A1", "P1", "P2", "H1", "H2", "H3", "F1"):
        assert f"| {rule} |" in text
    for dimension in ("task | 40%", "general | 20%", "speed | 15%", "resources | 15%", "deployment | 10%"):
        assert f"| {dimension} |" in text
