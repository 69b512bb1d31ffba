"""The error every layer reports bad input with: the file, line or key, and what to do (exit code 2)."""

from __future__ import annotations

__all__ = ["InputError", "KnowledgeError"]


class InputError(Exception):
    """Bad input from the user: an answers file, a dataset, a model path or an argument.

    The command line prints it without a traceback and exits with code 2.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.file, self.line, self.key, self.hint = message, file, line, key, hint

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        elif self.line:
            where = f"line {self.line}: "
        key = f"{self.key}: " if self.key else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{key}{self.message}{hint}"


class KnowledgeError(InputError):
    """A file in knowledge/ is malformed (a maintainer's mistake, not the user's); it names the file and key."""
