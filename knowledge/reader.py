"""One reader of parsed YAML for every file the tool reads (knowledge/ and the user's answers file): typed
values by key, and errors that name the file, the key path and, when known, its line."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, NoReturn

import yaml

from knowledge.errors import InputError

__all__ = ["Reader", "SAFE_LOADER", "describe", "key_lines", "parse_yaml", "read_yaml_file"]

#: The C-accelerated safe loader when PyYAML has it; it builds only plain Python objects, like safe_load.
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: A number written in decimal or scientific notation (1e-4, 2.5E3, -3).
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
#: Bounds on what the YAML reader accepts (answers files are a few hundred bytes; knowledge files a few KB):
#: the text's size, the nodes after expanding aliases, and the nesting depth. Beyond them it is refused before
#: anything is built, so an alias bomb or a deep nest costs milliseconds, not minutes and gigabytes.
MAX_YAML_BYTES = 1_000_000
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64

_NAMES = {dict: "a mapping", list: "a list", str: "a string", int: "an integer", float: "a number",
          bool: "true/false", type(None): "nothing"}


def describe(value: Any) -> str:
    """What a value is, for an error message: `a string ('abc')`, `a list`."""
    if isinstance(value, (dict, list)):
        return _NAMES[type(value)]
    return f"{_NAMES.get(type(value), type(value).__name__)} ({value!r})"


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {**_NAMES, bool: "true or false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


class Reader:
    """Typed values out of one parsed mapping. `path` is this mapping's key path in the file (`data`,
    `methods[2]`); `lines` maps key paths to 1-based lines; `error` is the exception class raised."""

    def __init__(self, data: Any, *, file: str | None, path: str = "", lines: dict[str, int] | None = None,
                 error: type[InputError] = InputError, allowed: tuple[str, ...] | None = None) -> None:
        self.data, self.file, self.path, self.lines, self.error = data, file, path, lines or {}, error
        if not isinstance(data, dict):
            keys = f" with keys {', '.join(allowed)}" if allowed else ""
            self.fail(f"must be a mapping{keys}, got {describe(data)}")
        if allowed is not None:
            self.only(*allowed)

    # ---- errors
    def key_path(self, key: str | None = None) -> str:
        if key is None:
            return self.path
        if key.startswith("["):
            return f"{self.path}{key}"
        return f"{self.path}.{key}" if self.path else key

    def line_of(self, path: str) -> int | None:
        """The line of `path`, or of its nearest parent that is in the file (a missing key's section)."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path.rsplit(".", 1)[0] if "." in path else path.rsplit("[", 1)[0] if "[" in path else ""
        return None

    def fail(self, message: str, key: str | None = None, hint: str | None = None) -> NoReturn:
        path = self.key_path(key)
        raise self.error(message, file=self.file, line=self.line_of(path), key=path or None, hint=hint)

    # ---- structure
    def only(self, *allowed: str) -> None:
        for key in self.data:
            if key not in allowed:
                self.fail("unknown key", str(key), f"allowed here: {', '.join(allowed)}")

    def sub(self, key: str, allowed: tuple[str, ...] | None = None, *, optional: bool = False) -> Reader:
        """The mapping under `key`; with `optional`, an absent or empty one reads as {}."""
        value = self.data.get(key) if optional else self.get(key, dict)
        return Reader(value or {} if optional else value, file=self.file, path=self.key_path(key),
                      lines=self.lines, error=self.error, allowed=allowed)

    def item(self, key: str, index: int, value: Any, allowed: tuple[str, ...] | None = None) -> Reader:
        """Item `index` of the list under `key`, as a mapping."""
        return Reader(value, file=self.file, path=f"{self.key_path(key)}[{index}]", lines=self.lines,
                      error=self.error, allowed=allowed)

    # ---- values that must be there (knowledge files), or have a default
    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                self.fail("missing", key)
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, bool) and kind is not bool and not (isinstance(kind, tuple) and bool in kind):
            self.fail(f"must be {_type_name(kind)}, got {describe(value)}", key)
        if not isinstance(value, kind):
            self.fail(f"must be {_type_name(kind)}, got {describe(value)}", key)
        return value

    def strings(self, key: str, default: Any = ...) -> list[str]:
        values = self.get(key, list, default)
        if not all(isinstance(v, str) and v for v in values):
            self.fail("must be a list of non-empty strings", key)
        return list(values)

    def number_range(self, key: str) -> tuple[float, float]:
        values = self.get(key, list)
        if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            self.fail("must be [low, high], two numbers", key)
        low, high = float(values[0]), float(values[1])
        if low > high:
            self.fail(f"low {low} is above high {high}", key)
        return low, high

    def choice(self, key: str, allowed: tuple[str, ...], default: Any = ...) -> Any:
        value = self.get(key, str, default)
        if value is not default and value not in allowed:
            self.fail(f"{value!r} is not allowed", key, f"one of: {', '.join(allowed)}")
        return value

    # ---- optional values (the answers file: absent or null means "not given")
    def string(self, key: str, *, required: bool = False, choices: tuple[str, ...] | None = None) -> str | None:
        if self.data.get(key) is None:
            if required:
                self.fail("missing", key, f"one of: {', '.join(choices)}" if choices else None)
            return None
        value = self.data[key]
        if not isinstance(value, str) or not value.strip():
            self.fail(f"must be a non-empty string, got {describe(value)}", key)
        if choices is not None and value not in choices:
            self.fail(f"{value!r} is not allowed", key, f"one of: {', '.join(choices)}")
        return str(value)

    def number(self, key: str, *, integer: bool = False, low: float | None = None,
               high: float | None = None) -> Any:
        if self.data.get(key) is None:
            return None
        value = self.data[key]
        if isinstance(value, str) and NUMBER.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string; it is the number a user meant
            if integer and value.is_integer():
                value = int(value)
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            self.fail(f"must be {'an integer' if integer else 'a number'}, got {describe(value)}", key)
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(f"must be a finite number, got {value}", key, "write a plain number (not .nan or .inf)")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"from {low:g}" + (f" to {high:g}" if high is not None else " up")
            self.fail(f"{value} is out of range", key, f"allowed: {bounds}")
        return value if integer else float(value)

    def boolean(self, key: str, default: bool) -> bool:
        if self.data.get(key) is None:
            return default
        if not isinstance(self.data[key], bool):
            self.fail(f"must be true or false, got {describe(self.data[key])}", key)
        return bool(self.data[key])


def key_lines(text: str) -> dict[str, int]:
    """1-based line of every key path (`data.path`, `hardware.gpus[0].name`) in a YAML document."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = f"{path}.{k.value}" if path else str(k.value)
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                key = f"{path}[{i}]"
                lines[key] = item.start_mark.line + 1
                walk(item, key)

    try:
        root = yaml.compose(text, Loader=SAFE_LOADER)
    except (yaml.YAMLError, RecursionError):
        return lines
    if root is not None:
        walk(root, "")
    return lines


def _check_nodes(root: yaml.Node, file: str, error: type[InputError]) -> None:
    """Refuse recursive aliases, documents that expand past MAX_YAML_NODES or nest past MAX_YAML_DEPTH, and
    duplicate keys in a mapping, naming the line. Sizes are memoized per node, so shared (aliased) nodes are
    counted as expanded without being expanded."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def fail(message: str, node: yaml.Node, hint: str) -> NoReturn:
        raise error(message, file=file, line=node.start_mark.line + 1, hint=hint)

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            fail("a recursive alias (an anchor used inside itself)", node, "write the values out")
        if depth > MAX_YAML_DEPTH:
            fail(f"nested deeper than {MAX_YAML_DEPTH} levels", node, "flatten the structure")
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen:
                        fail(f"duplicate key {k.value!r} (first on line {seen[k.value]})", k,
                             "keep one of them: the file would otherwise silently use the last")
                    seen[k.value] = k.start_mark.line + 1
                total += size(k, depth + 1) + size(v, depth + 1)
                if total > MAX_YAML_NODES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item, depth + 1)
                if total > MAX_YAML_NODES:
                    break
        if total > MAX_YAML_NODES:
            fail(f"expands to more than {MAX_YAML_NODES:,} values (aliases included)", node,
                 "an answers file needs a few dozen; remove the repeated aliases")
        active.discard(key)
        sizes[key] = total
        return total

    size(root, 0)


def parse_yaml(text: str, *, file: str, error: type[InputError] = InputError) -> Any:
    """The parsed document (safe loading only); a syntax error names the file and line. Bounded: see
    MAX_YAML_BYTES, MAX_YAML_NODES, MAX_YAML_DEPTH; duplicate keys are refused."""
    if len(text) > MAX_YAML_BYTES:
        raise error(f"{len(text):,} characters: larger than any answers or knowledge file needs "
                    f"(at most {MAX_YAML_BYTES:,})", file=file, hint="is this the right file?")
    try:
        root = yaml.compose(text, Loader=SAFE_LOADER)
        if root is None:
            return None
        _check_nodes(root, file, error)
        return yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"not valid YAML: {problem}", file=file, line=mark.line + 1 if mark else None,
                    hint="check the indentation and quoting on that line") from None
    except RecursionError:
        raise error("nested too deeply to read", file=file, hint="flatten the structure") from None


def read_yaml_file(path: Path, *, error: type[InputError] = InputError) -> tuple[Any, dict[str, int]]:
    """A YAML file parsed, with the line of every key path."""
    text = path.read_text(encoding="utf-8")
    return parse_yaml(text, file=path.name, error=error), key_lines(text)
