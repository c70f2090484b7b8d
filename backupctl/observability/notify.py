"""Tell a policy's webhooks how a run went: the run event as JSON, or AlertManager alerts.

A notification is a side channel. ``send_notifications`` never raises and never changes
what the run reports: whatever goes wrong with a target (refused connection, timeout,
DNS, an HTTP error, an unreadable token, a bug building the body) is logged as
``notification failed`` and returned as an undelivered ``Delivery``, and the next target
is still tried. The caller only logs the result; the run's own error and exit code stand.

Each target gets ``target.attempts`` tries of ``target.timeout`` each; connection errors,
timeouts, 429 and 5xx are retried with backoff through ``backupctl.retry`` (which logs
every retry), other answers are final. Redirects are not followed: urllib would turn the
POST into a GET and could carry the bearer token to another host.

Secrets stay out of logs and results: the token only travels in the ``Authorization``
header, error messages are scrubbed of it (and of the URL's query string) before they
are raised into the retry logger, logged or returned, and URLs are reported as
``scheme://host:port/path``.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from backupctl import __version__
from backupctl.history import RunEvent
from backupctl.policy.common import NotifyTarget, PolicyBase
from backupctl.redaction import KnownSecrets, redact_url
from backupctl.retry import DEFAULT_POLICY, RetryPolicy, describe_error, retrying

#: how much of an error response's body goes into the error message
_ERROR_BODY_CHARS = 200
_LABEL_NAME_INVALID = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class Delivery:
    """What became of one notification. ``url`` is the target's without its query string."""

    url: str
    format: str
    delivered: bool
    attempts: int
    #: the last HTTP status received, if any
    status: int | None = None
    #: why it was not delivered (secrets scrubbed)
    error: str | None = None


class WebhookError(Exception):
    """One attempt failed; ``transient`` ones are retried. The message holds no secret."""

    def __init__(self, message: str, status: int | None = None, transient: bool = False):
        super().__init__(message)
        self.status = status
        self.transient = transient


def send_notifications(
    policy: PolicyBase, event: RunEvent, retry: RetryPolicy | None = None
) -> list[Delivery]:
    """POST ``event`` to every target of ``policy.notify`` whose ``on`` lists its outcome.

    ``retry`` sets the backoff (default ``DEFAULT_POLICY``); the number of tries is always
    the target's ``attempts``. Returns one ``Delivery`` per target tried. Never raises.
    """
    wait = retry or DEFAULT_POLICY
    return [
        _deliver(target, event, replace(wait, attempts=target.attempts))
        for target in policy.notify
        if event.outcome in target.when
    ]


def _deliver(target: NotifyTarget, event: RunEvent, retry: RetryPolicy) -> Delivery:
    url = redact_url(target.url)
    log = structlog.get_logger().bind(
        policy=event.policy, url=url, format=target.format, outcome=event.outcome
    )
    attempts = 0

    scrub: Callable[[str], str] = KnownSecrets(target.url)  # until the token is known

    def attempt(request: urllib.request.Request, scrub: Callable[[str], str]) -> int:
        nonlocal attempts
        attempts += 1
        return _post(request, target.timeout.total_seconds(), scrub)

    # Deliberately broad: a notification must never hide the run's result, whatever
    # breaks here. Nothing is left half-done: the failure becomes this target's Delivery.
    try:
        token = _bearer_token(target)
        scrub = KnownSecrets(target.url, [token])
        request = _request(target.url, _body(target.format, event), token)
        retries = retrying(
            _is_transient, "notification retry", retry, url=url, format=target.format
        )
        status = retries(attempt, request, scrub)
    except Exception as exc:
        error = scrub(str(exc) if isinstance(exc, WebhookError) else describe_error(exc))
        last = exc.status if isinstance(exc, WebhookError) else None
        log.error("notification failed", attempts=attempts, status=last, error=error)
        return Delivery(url, target.format, False, attempts, last, error)
    log.info("notification sent", attempts=attempts, status=status)
    return Delivery(url, target.format, True, attempts, status)


def _bearer_token(target: NotifyTarget) -> str | None:
    """The target's token, stripped, or None. Raises SecretError or ValueError."""
    token = target.token()
    if token is None:
        return None
    token = token.strip()
    if not token:
        raise ValueError("the bearer token is empty")
    if not (token.isascii() and token.isprintable()) or " " in token:
        # http.client would reject the header with the token in its message
        raise ValueError("the bearer token holds whitespace, control or non-ASCII characters")
    return token


def _request(url: str, body: Any, token: str | None) -> urllib.request.Request:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"backupctl/{__version__}",
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body, default=str).encode()
    return urllib.request.Request(url, data=data, headers=headers, method="POST")


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_RefuseRedirects)


def _post(request: urllib.request.Request, timeout: float, scrub: Callable[[str], str]) -> int:
    """POST once; return the 2xx status. Raises WebhookError (scrubbed)."""
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        with exc:
            text = exc.read(_ERROR_BODY_CHARS).decode(errors="replace")
        detail = " ".join(f"HTTP {exc.code} {exc.reason} {text}".split())
        if 300 <= exc.code < 400:
            detail += " (redirects are not followed: point url at the final address)"
        transient = exc.code == 429 or exc.code >= 500
        raise WebhookError(scrub(detail), exc.code, transient) from None
    except urllib.error.URLError as exc:
        reason = exc.reason if isinstance(exc.reason, BaseException) else exc
        raise WebhookError(scrub(describe_error(reason)), transient=True) from None
    except (OSError, http.client.HTTPException) as exc:
        raise WebhookError(scrub(describe_error(exc)), transient=True) from None


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, WebhookError) and exc.transient


def _body(fmt: str, event: RunEvent) -> Any:
    return alertmanager_alerts(event) if fmt == "alertmanager" else event.to_dict()


#: how long a failure alert fires without a later run (AlertManager would otherwise
#: resolve it after its resolve_timeout, 5 minutes by default)
FAILURE_ALERT_LASTS = timedelta(days=1)


def alertmanager_alerts(event: RunEvent) -> list[dict[str, Any]]:
    """The AlertManager v2 ``postableAlerts`` for ``event``.

    A failure fires ``BackupctlRunFailed`` (critical), a skipped run fires
    ``BackupctlRunSkipped`` (warning); a success or an unchanged run resolves both
    (``endsAt``), which AlertManager matches by their identical labels.
    """
    at = _rfc3339(event.finished_at)
    failed = ("BackupctlRunFailed", "critical")
    skipped = ("BackupctlRunSkipped", "warning")
    if event.outcome == "failure":  # firing for a day unless a success resolves it sooner
        until = _rfc3339(event.finished_at + FAILURE_ALERT_LASTS)
        return [_alert(event, *failed, startsAt=at, endsAt=until)]
    if event.outcome == "skipped":
        return [_alert(event, *skipped, startsAt=at)]
    return [_alert(event, *alert, startsAt=at, endsAt=at) for alert in (failed, skipped)]


def _alert(event: RunEvent, name: str, severity: str, **times: str) -> dict[str, Any]:
    labels = {
        "alertname": name,
        "policy": event.policy,
        "kind": event.kind,
        "severity": severity,
        "instance": event.host,
        "source": "backupctl",
    }
    return {"labels": labels, "annotations": _annotations(event), **times}


_OUTCOME_WORDS = {
    "failure": "failed",
    "success": "succeeded",
    "unchanged": "found nothing new to store",
    "skipped": "was skipped",
}


def _annotations(event: RunEvent) -> dict[str, str]:
    """Annotations are a LabelSet: string values under names like ``[A-Za-z_][A-Za-z0-9_]*``."""
    what = "drill" if event.kind == "drill" else f"backup {event.kind}"
    summary = f"{what} of {event.policy} {_OUTCOME_WORDS[event.outcome]}"
    facts: dict[str, Any] = {
        "summary": summary,
        "description": event.error or summary,
        "driver": event.driver,
        "backup_id": event.backup_id,
        "bytes": event.bytes,
        "started_at": _rfc3339(event.started_at),
        "finished_at": _rfc3339(event.finished_at),
        "duration_seconds": event.duration_seconds,
    }
    for key, value in event.details.items():
        facts.setdefault(_label_name(key), value)
    return {
        key: value if isinstance(value, str) else json.dumps(value, default=str)
        for key, value in facts.items()
        if value is not None
    }


def _label_name(key: str) -> str:
    name = _LABEL_NAME_INVALID.sub("_", str(key))
    return name if name and not name[0].isdigit() else f"_{name}"


def _rfc3339(moment: datetime) -> str:
    """ISO 8601 with an offset, as AlertManager requires (a naive time is local time)."""
    return moment.astimezone().isoformat() if moment.tzinfo is None else moment.isoformat()
