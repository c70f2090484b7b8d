"""Read one YAML policy file into plain data plus a map from field path to line.

PyYAML's composer keeps every node's position; we walk the node tree ourselves so
duplicate keys are reported (PyYAML would silently keep the last) and ``${ENV}``
interpolation errors point at the line of the value.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from backupctl.errors import PolicyProblem

FieldPath = tuple[str | int, ...]
_ENV_RE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class YamlDocument:
    data: Any
    lines: dict[FieldPath, int] = field(default_factory=dict)
    problems: list[PolicyProblem] = field(default_factory=list)

    def line_of(self, path: FieldPath) -> int | None:
        """Return the line of ``path`` or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)


def interpolate(text: str, environ: dict[str, str] | None = None) -> str:
    """Replace ``${VAR}`` / ``${VAR:-default}``; ``$$`` is a literal ``$``.

    Raises KeyError naming the variable when it is unset and has no default.
    """
    env = os.environ if environ is None else environ

    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise KeyError(name)

    return _ENV_RE.sub(repl, text)


def _field_name(path: FieldPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Builder:
    def __init__(self, file: str):
        self.file = file
        self.doc = YamlDocument(data=None)
        self._constructor = yaml.SafeLoader("")

    def problem(self, path: FieldPath, line: int | None, message: str) -> None:
        self.doc.problems.append(PolicyProblem(self.file, line, _field_name(path), message))

    def build(self, node: yaml.Node, path: FieldPath) -> Any:
        line = node.start_mark.line + 1
        self.doc.lines.setdefault(path, line)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._constructor.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int)):
                    self.problem(path, key_node.start_mark.line + 1, "keys must be strings")
                    continue
                key = str(key)
                child = (*path, key)
                if key in result:
                    self.problem(child, key_node.start_mark.line + 1, f"duplicate key {key!r}")
                    continue
                self.doc.lines[child] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self._constructor.construct_object(node, deep=True)
        if isinstance(value, str) and "$" in value:
            try:
                value = interpolate(value)
            except KeyError as exc:
                self.problem(path, line, f"environment variable {exc.args[0]} is not set")
        return value


def load_yaml(path: Path) -> YamlDocument:
    """Parse ``path``; syntax errors and duplicate keys become problems, never exceptions."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        doc = YamlDocument(data=None)
        doc.problems.append(PolicyProblem(file, None, "", f"cannot read file: {exc}"))
        return doc
    builder = _Builder(file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        message = f"invalid YAML: {exc.problem or exc.context}"
        builder.doc.problems.append(PolicyProblem(file, line, "", message))
        return builder.doc
    except yaml.YAMLError as exc:
        builder.doc.problems.append(PolicyProblem(file, None, "", f"invalid YAML: {exc}"))
        return builder.doc
    if node is None:
        builder.doc.problems.append(PolicyProblem(file, 1, "", "the file is empty"))
        return builder.doc
    builder.doc.data = builder.build(node, ())
    return builder.doc
