"""Errors in the shape Elasticsearch answers with.

Every failure of the test double is an :class:`EsError`; the HTTP layer turns it into
``{"error": {"root_cause": [...], "type": ..., "reason": ..., ...}, "status": N}``, the
body ``ElasticsearchException`` renders. The constructors below carry the types, reasons
and extra fields (``index``, ``index_uuid``, ``resource.id``, ...) of the real exceptions.
"""

from __future__ import annotations

from typing import Any


class EsError(Exception):
    """An Elasticsearch exception: HTTP status, ``type``, ``reason`` and extra fields."""

    def __init__(
        self,
        status: int,
        error_type: str,
        reason: str,
        *,
        caused_by: EsError | None = None,
        headers: dict[str, list[str]] | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(f"{error_type}: {reason}")
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.caused_by = caused_by
        self.headers = headers or {}
        self.fields = fields

    def cause(self) -> dict[str, Any]:
        """This exception alone, as one entry of ``root_cause``."""
        cause: dict[str, Any] = {"type": self.error_type, "reason": self.reason, **self.fields}
        if self.headers:
            cause["header"] = {k: v[0] if len(v) == 1 else v for k, v in self.headers.items()}
        return cause

    def detail(self) -> dict[str, Any]:
        """This exception and its causes, nested in ``caused_by``."""
        detail = self.cause()
        if self.caused_by is not None:
            detail["caused_by"] = self.caused_by.detail()
        return detail

    def root(self) -> EsError:
        return self.caused_by.root() if self.caused_by is not None else self

    def body(self) -> dict[str, Any]:
        return {
            "error": {"root_cause": [self.root().cause()], **self.detail()},
            "status": self.status,
        }


def with_resource(error: EsError, resource_type: str, resource_id: str) -> EsError:
    """Put ``resource.type``/``resource.id`` first, as ``ResourceNotFoundException`` does."""
    error.fields = {"resource.type": resource_type, "resource.id": resource_id, **error.fields}
    return error


def index_not_found(name: str) -> EsError:
    return with_resource(
        EsError(
            404,
            "index_not_found_exception",
            f"no such index [{name}]",
            index_uuid="_na_",
            index=name,
        ),
        "index_or_alias",
        name,
    )


def index_closed(name: str, uuid: str) -> EsError:
    return EsError(400, "index_closed_exception", "closed", index_uuid=uuid, index=name)


def index_exists(name: str, uuid: str) -> EsError:
    return EsError(
        400,
        "resource_already_exists_exception",
        f"index [{name}/{uuid}] already exists",
        index_uuid=uuid,
        index=name,
    )


def invalid_index_name(name: str, why: str) -> EsError:
    return EsError(
        400,
        "invalid_index_name_exception",
        f"Invalid index name [{name}], {why}",
        index_uuid="_na_",
        index=name,
    )


def illegal_argument(reason: str, status: int = 400) -> EsError:
    return EsError(status, "illegal_argument_exception", reason)


def illegal_state(reason: str) -> EsError:
    """``IllegalStateException``: an answer of 500, as Elasticsearch renders it."""
    return EsError(500, "illegal_state_exception", reason)


def invalid_alias_name(name: str, why: str) -> EsError:
    return EsError(400, "invalid_alias_name_exception", f"Invalid alias name [{name}], {why}")


def resource_exists(reason: str, **fields: Any) -> EsError:
    return EsError(400, "resource_already_exists_exception", reason, **fields)


def not_in_data_streams() -> EsError:
    return illegal_argument("only write ops with an op_type of create are allowed in data streams")


def document_parsing(position: str, reason: str) -> EsError:
    """``DocumentParsingException`` wrapping the mapper's ``IllegalArgumentException``."""
    return EsError(
        400,
        "document_parsing_exception",
        f"[{position}] failed to parse: {reason}",
        caused_by=illegal_argument(reason),
    )


def validation_failed(*problems: str) -> EsError:
    listed = "".join(f"{n}: {p};" for n, p in enumerate(problems, 1))
    return EsError(400, "action_request_validation_exception", f"Validation Failed: {listed}")


def parse_error(reason: str) -> EsError:
    return EsError(400, "parse_exception", reason)


def repository_missing(repository: str) -> EsError:
    return EsError(404, "repository_missing_exception", f"[{repository}] missing")


def repository_error(repository: str, message: str, *, status: int = 500) -> EsError:
    return EsError(status, "repository_exception", f"[{repository}] {message}")


def snapshot_missing(repository: str, snapshot: str) -> EsError:
    return EsError(404, "snapshot_missing_exception", f"[{repository}:{snapshot}] is missing")


def invalid_snapshot_name(repository: str, snapshot: str, why: str) -> EsError:
    return EsError(
        400,
        "invalid_snapshot_name_exception",
        f"[{repository}:{snapshot}] Invalid snapshot name [{snapshot}], {why}",
    )


def snapshot_name_in_use(repository: str, snapshot: str, why: str) -> EsError:
    """``SnapshotNameAlreadyInUseException`` (8.3+), a 400 subclass of
    ``InvalidSnapshotNameException`` whose own type is what Elasticsearch renders."""
    return EsError(
        400,
        "snapshot_name_already_in_use_exception",
        f"[{repository}:{snapshot}] Invalid snapshot name [{snapshot}], {why}",
    )


def snapshot_restore(snapshot: str, message: str) -> EsError:
    """``snapshot`` is ``repo:name/uuid`` (or ``repo:name`` before the uuid is known)."""
    return EsError(500, "snapshot_restore_exception", f"[{snapshot}] {message}")


def snapshot_error(snapshot: str, message: str) -> EsError:
    return EsError(500, "snapshot_exception", f"[{snapshot}] {message}")


def snapshot_in_progress(verb: str, indices: list[str]) -> EsError:
    listed = ", ".join(f"[{name}]" for name in indices)
    return EsError(
        400,
        "snapshot_in_progress_exception",
        f"Cannot {verb} indices that are being snapshotted: [{listed}]. Try again after "
        "snapshot finishes or cancel the currently running snapshot.",
    )


def security(reason: str, **fields: Any) -> EsError:
    return EsError(
        401,
        "security_exception",
        reason,
        headers={
            "WWW-Authenticate": [
                'Basic realm="security", charset="UTF-8"',
                'Bearer realm="security"',
                "ApiKey",
            ]
        },
        **fields,
    )
