"""The layers of ARCHITECTURE.md hold: advisor -> runner -> knowledge, imports only going down; the advisor
never imports the training stack itself; runner and knowledge never import textual (import-linter's contracts
in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_the_pure_commands_import_no_training_stack() -> None:
    code = ("import sys, advisor.cli, advisor.recommend, advisor.pipeline, advisor.runs; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'bitsandbytes', 'datasets', 'textual') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"
