"""Load and validate policy files, collecting every problem with its file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backupctl.errors import BackupctlError, NotFoundError, PolicyError, PolicyProblem
from backupctl.policy.common import PolicyBase
from backupctl.policy.yamlsrc import FieldPath, YamlDocument, load_yaml


def policy_files(path: Path) -> list[Path]:
    """Return the policy files at ``path`` (a file, or a directory's ``*.yaml``/``*.yml``).

    Raises NotFoundError when the path does not exist.
    """
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    raise NotFoundError(f"policy path {path} does not exist")


def _message(error: dict[str, Any]) -> str:
    kind, msg = str(error["type"]), str(error["msg"])
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; unknown fields are not allowed)"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error" and "expected" in error.get("ctx", {}):
        return f"expected {error['ctx']['expected']}, got {error.get('input')!r}"
    if msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    if msg.startswith("Assertion failed, "):
        return msg[len("Assertion failed, ") :]
    return f"{msg}, got {error.get('input')!r}" if "input" in error else msg


def problems_from(exc: ValidationError, doc: YamlDocument, file: str) -> list[PolicyProblem]:
    problems = []
    for error in exc.errors():
        loc: FieldPath = tuple(part for part in error["loc"] if not isinstance(part, str) or part)
        field = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc)
        field = field.replace(".[", "[")
        problem = PolicyProblem(file, doc.line_of(loc), field, _message(dict(error)), loc)
        problems.append(problem)
    return problems


def parse_policy(path: Path) -> tuple[PolicyBase | None, list[PolicyProblem]]:
    """Return the validated policy in ``path`` (or None) and every problem found in it."""
    from backupctl.policy.registry import POLICY_MODELS

    file = str(path)
    doc = load_yaml(path)
    if doc.problems:
        return None, doc.problems
    if not isinstance(doc.data, dict):  # a list, a scalar, or null ("~", an anchored nothing)
        return None, [PolicyProblem(file, 1, "", "a policy must be a mapping of fields")]
    driver = doc.data.get("driver")
    if not isinstance(driver, str) or driver not in POLICY_MODELS:  # a list is unhashable
        known = ", ".join(sorted(POLICY_MODELS))
        got = "missing" if driver is None else f"{driver!r}"
        line = doc.line_of(("driver",))
        return None, [PolicyProblem(file, line, "driver", f"expected one of {known}, got {got}")]
    model = POLICY_MODELS[driver]
    try:
        policy = model.model_validate(doc.data)
    except ValidationError as exc:
        found = problems_from(exc, doc, file)
        judged = [p for p in found if not any(p.loc[: len(u)] == u for u in doc.unresolved)]
        return None, judged
    policy._source = path
    return policy, []


def load_policies(path: Path) -> list[PolicyBase]:
    """Load every policy under ``path``.

    Raises PolicyError with every problem of every file, NotFoundError for a missing path.
    """
    policies: list[PolicyBase] = []
    problems: list[PolicyProblem] = []
    seen: dict[str, Path] = {}
    for file in policy_files(path):
        policy, found = parse_policy(file)
        problems.extend(found)
        if policy is None:
            continue
        if policy.name in seen:
            line = None
            problems.append(
                PolicyProblem(
                    str(file),
                    line,
                    "name",
                    f"policy {policy.name!r} is also defined in {seen[policy.name]}",
                )
            )
            continue
        seen[policy.name] = file
        policies.append(policy)
    problems.extend(_mixed_encryption(policies))
    if problems:
        raise PolicyError(problems)
    return policies


def _mixed_encryption(policies: list[PolicyBase]) -> list[PolicyProblem]:
    """Policies sharing a repository must share its encryption key (or all have none):
    ``catalog sync`` reads every manifest in a repository with one policy's key."""
    first: dict[str, tuple[str, str | None]] = {}
    problems = []
    for policy in policies:
        spec = policy.manifest_repository
        try:
            kid = spec.encryption.key_id() if spec.encryption is not None else None
        except BackupctlError:
            continue  # the key went away since it was validated: reported when used
        name, other = first.setdefault(spec.url, (policy.name, kid))
        if other != kid:
            theirs, ours = (f"key {k}" if k else "no encryption" for k in (other, kid))
            problems.append(
                PolicyProblem(
                    str(policy.source),
                    None,
                    "repository.encryption",
                    f"{spec.url} is shared with policy {name!r}, which uses {theirs}; this "
                    f"policy uses {ours} (policies sharing a repository need the same key)",
                )
            )
    return problems


def find_policy(policies: list[PolicyBase], name: str) -> PolicyBase:
    """Return the policy called ``name``. Raises NotFoundError listing the known names."""
    for policy in policies:
        if policy.name == name:
            return policy
    known = ", ".join(p.name for p in policies) or "none"
    raise NotFoundError(f"no policy named {name!r} (known policies: {known})")
