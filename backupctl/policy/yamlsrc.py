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
from backupctl.offline import host_checks

FieldPath = tuple[str | int, ...]
_ENV_RE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

#: Limits that keep a hostile file from costing more than a policy is worth: a policy is
#: a few KiB, a few levels deep, with tens of values. Aliases stay allowed, but a
#: "billion laughs" document (aliases of aliases multiplying the values) stops at
#: MAX_VALUES, and nesting (or an alias cycle) at MAX_DEPTH, long before the recursion
#: limit.
MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_VALUES = 20_000
#: collections are built here, not by PyYAML: any other tag (!!set, !!omap, !!python/...)
#: would be silently dropped
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _TooComplex(Exception):
    """The document exceeds MAX_DEPTH or MAX_VALUES; ``line`` is where it was noticed."""

    def __init__(self, line: int | None, message: str):
        super().__init__(message)
        self.line = line


class _PolicyLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses nesting deeper than MAX_DEPTH (PyYAML's composer
    recurses once per level: a deep document would hit the interpreter's limit)."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _TooComplex(
                    mark.line + 1, f"nested more than {MAX_DEPTH} levels deep; not a policy"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


@dataclass
class YamlDocument:
    data: Any
    lines: dict[FieldPath, int] = field(default_factory=dict)
    problems: list[PolicyProblem] = field(default_factory=list)
    #: offline, the fields whose ${VAR} is not set here (left as written, not checked)
    unresolved: set[FieldPath] = field(default_factory=set)

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
        self._values = 0

    def problem(self, path: FieldPath, line: int | None, message: str) -> None:
        self.doc.problems.append(PolicyProblem(self.file, line, _field_name(path), message))

    def _scalar(self, node: yaml.Node, path: FieldPath) -> Any:
        """The value of a scalar node; a value its tag cannot hold (``2001-13-45``, an int
        of 5,000 digits, ``!!binary`` that is not base64, an unknown tag) is a problem."""
        try:
            return self._constructor.construct_object(node, deep=True)
        except Exception as exc:
            # a scalar is only converted here, nothing is half-set; and PyYAML's constructors
            # fail in every way on explicit tags ("!!int " IndexError, "!!timestamp "
            # AttributeError, "2001-13-45" ValueError, "!!x" ConstructorError)
            reason = getattr(exc, "problem", None) or str(exc)
            self.problem(path, node.start_mark.line + 1, f"invalid value: {reason}")
            return None

    def build(self, node: yaml.Node, path: FieldPath) -> Any:
        line = node.start_mark.line + 1
        self._values += 1
        if self._values > MAX_VALUES:
            raise _TooComplex(
                line, f"more than {MAX_VALUES} values (aliases expanding?); not a policy"
            )
        if len(path) > MAX_DEPTH:  # aliases can nest deeper than the text, even in a cycle
            raise _TooComplex(line, f"nested more than {MAX_DEPTH} levels deep; not a policy")
        self.doc.lines.setdefault(path, line)
        if node.tag not in _PLAIN_TAGS and not isinstance(node, yaml.ScalarNode):
            self.problem(path, line, f"unsupported tag {node.tag!r} (a policy is plain YAML)")
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problem(path, key_node.start_mark.line + 1, "keys must be strings")
                    continue
                key = self._scalar(key_node, path)
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
        value = self._scalar(node, path)
        if isinstance(value, str) and "$" in value:
            try:
                value = interpolate(value)
            except KeyError as exc:
                if host_checks():
                    self.problem(path, line, f"environment variable {exc.args[0]} is not set")
                else:  # offline: ${VAR} stays as written, and its field is not judged
                    self.doc.unresolved.add(path)
        return value


def load_yaml(path: Path) -> YamlDocument:
    """Parse ``path``; syntax errors and duplicate keys become problems, never exceptions."""
    file = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        doc = YamlDocument(data=None)
        doc.problems.append(PolicyProblem(file, None, "", f"cannot read file: {exc}"))
        return doc
    builder = _Builder(file)
    if len(raw) > MAX_BYTES:
        message = f"the file is larger than {MAX_BYTES // 1024} KiB; not a policy"
        builder.doc.problems.append(PolicyProblem(file, None, "", message))
        return builder.doc
    try:
        node = yaml.compose(text, Loader=_PolicyLoader)
    except _TooComplex as exc:
        builder.doc.problems.append(PolicyProblem(file, exc.line, "", str(exc)))
        return builder.doc
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
    try:
        builder.doc.data = builder.build(node, ())
    except _TooComplex as exc:
        builder.doc.data = None
        builder.doc.problems.append(PolicyProblem(file, exc.line, "", str(exc)))
    return builder.doc
