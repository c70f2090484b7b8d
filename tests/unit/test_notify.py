"""Run notifications: real HTTP to a local receiver, retries, timeouts, secrets, validation."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from backupctl import __version__
from backupctl.errors import PolicyError
from backupctl.history import RunEvent
from backupctl.observability.notify import Delivery, send_notifications
from backupctl.policy.common import NotifyTarget, PolicyBase
from backupctl.policy.loader import load_policies
from backupctl.retry import NO_WAIT
from tests.support.cli import run_backupctl
from tests.support.net import free_port
from tests.support.webhook import Reply, WebhookReceiver

TOKEN = "tok-3f9a7c21e5d84b06"
STARTED = datetime(2024, 5, 1, 2, 0, 0, tzinfo=UTC)
FINISHED = datetime(2024, 5, 1, 2, 3, 4, tzinfo=UTC)
LABEL_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def run_event(outcome: str = "failure", **fields: Any) -> RunEvent:
    values: dict[str, Any] = {
        "policy": "shop-db",
        "driver": "mariadb",
        "kind": "full",
        "outcome": outcome,
        "started_at": STARTED,
        "finished_at": FINISHED,
        "host": "db1.example",
        "error": "mariabackup exited with status 1" if outcome == "failure" else None,
        "backup_id": None if outcome == "failure" else "20240501T020000Z-full",
        "details": {"log-file": "/var/log/backupctl/shop-db.log", "tables": 42},
    }
    return RunEvent(**{**values, **fields})


def policy_file(directory: Path, notify: list[dict[str, Any]]) -> Path:
    """Write a model policy with ``notify`` targets; return its path."""
    data = {
        "version": 1,
        "name": "shop-db",
        "driver": "model",
        "path": str(directory / "model"),
        "version_from": "VERSION",
        "repository": f"file://{directory / 'repo'}",
        "schedule": {"check": "0 * * * *"},
        "notify": notify,
    }
    path = directory / "shop-db.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load_policy(directory: Path, *notify: dict[str, Any]) -> PolicyBase:
    return load_policies(policy_file(directory, list(notify)))[0]


def with_targets(policy: PolicyBase, *targets: NotifyTarget) -> PolicyBase:
    return policy.model_copy(update={"notify": list(targets)})


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


# --- webhook format ---------------------------------------------------------------------


def test_failure_reaches_webhook_with_exact_body_token_and_headers(
    tmp_path: Path, hook: WebhookReceiver, token_file: Path
) -> None:
    policy = load_policy(tmp_path, {"url": hook.url("/hook"), "token_file": str(token_file)})
    event = run_event("failure")

    deliveries = send_notifications(policy, event, NO_WAIT)

    assert deliveries == [Delivery(hook.url("/hook"), "webhook", True, 1, 200, None)]
    [request] = hook.requests
    assert (request.method, request.path) == ("POST", "/hook")
    assert request.json == event.to_dict()
    assert request.json["error"] == "mariabackup exited with status 1"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"backupctl/{__version__}"


def test_success_is_sent_only_to_targets_that_ask_for_it(
    tmp_path: Path, hook: WebhookReceiver
) -> None:
    policy = load_policy(
        tmp_path,
        {"url": hook.url("/failures-only")},
        {"url": hook.url("/everything"), "when": ["failure", "success"]},
    )
    assert policy.notify[0].when == ["failure"]

    deliveries = send_notifications(policy, run_event("success"), NO_WAIT)

    assert [d.url for d in deliveries] == [hook.url("/everything")]
    assert [r.path for r in hook.requests] == ["/everything"]
    assert hook.requests[0].json["event"] == "run.success"
    assert "Authorization" not in hook.requests[0].headers


def test_no_matching_target_sends_nothing(tmp_path: Path, hook: WebhookReceiver) -> None:
    policy = load_policy(tmp_path, {"url": hook.url("/hook")})
    assert send_notifications(policy, run_event("skipped"), NO_WAIT) == []
    assert send_notifications(load_policy(tmp_path), run_event("failure"), NO_WAIT) == []
    assert hook.requests == []


# --- alertmanager format ----------------------------------------------------------------


def test_alertmanager_failure_fires_and_a_later_success_resolves_it(
    tmp_path: Path, hook: WebhookReceiver
) -> None:
    policy = load_policy(
        tmp_path,
        {
            "url": hook.url("/api/v2/alerts"),
            "format": "alertmanager",
            "when": ["failure", "success"],
        },
    )
    later = FINISHED + timedelta(hours=1)

    send_notifications(policy, run_event("failure"), NO_WAIT)
    send_notifications(
        policy,
        run_event("success", started_at=later - timedelta(minutes=5), finished_at=later),
        NO_WAIT,
    )

    fired, resolved = (r.json for r in hook.wait_for(2))
    labels = {
        "alertname": "BackupctlRunFailed",
        "policy": "shop-db",
        "kind": "full",
        "severity": "critical",
        "instance": "db1.example",
        "source": "backupctl",
    }
    [alert] = fired
    assert alert["labels"] == labels
    assert alert["annotations"]["summary"] == "backup full of shop-db failed"
    assert alert["annotations"]["description"] == "mariabackup exited with status 1"
    assert datetime.fromisoformat(alert["startsAt"]) == FINISHED
    assert datetime.fromisoformat(alert["startsAt"]).tzinfo is not None
    assert datetime.fromisoformat(alert["endsAt"]) == FINISHED + timedelta(days=1)
    # AlertManager rejects anything but string values under label-like names
    for annotation, value in alert["annotations"].items():
        assert isinstance(value, str)
        assert re.fullmatch(LABEL_NAME, annotation), annotation
    assert alert["annotations"]["log_file"] == "/var/log/backupctl/shop-db.log"

    [resolution] = [a for a in resolved if a["labels"]["alertname"] == "BackupctlRunFailed"]
    assert resolution["labels"] == labels
    assert datetime.fromisoformat(resolution["endsAt"]) == later
    assert datetime.fromisoformat(resolution["startsAt"]) == later
    assert resolution["annotations"]["backup_id"] == "20240501T020000Z-full"
    assert "succeeded" in resolution["annotations"]["summary"]


def test_alertmanager_skipped_run_is_a_warning_with_a_timezone(
    tmp_path: Path, hook: WebhookReceiver
) -> None:
    policy = load_policy(
        tmp_path, {"url": hook.url("/api/v2/alerts"), "format": "alertmanager", "when": ["skipped"]}
    )
    naive = datetime(2024, 5, 1, 2, 3, 4)
    event = run_event(
        "skipped", kind="drill", started_at=naive, finished_at=naive, error="lock held by pid 7"
    )

    [delivery] = send_notifications(policy, event, NO_WAIT)

    assert delivery.delivered
    [alert] = hook.requests[0].json
    assert alert["labels"]["alertname"] == "BackupctlRunSkipped"
    assert alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["summary"] == "drill of shop-db was skipped"
    assert alert["annotations"]["description"] == "lock held by pid 7"
    assert datetime.fromisoformat(alert["startsAt"]).tzinfo is not None


# --- retries and failures ---------------------------------------------------------------


def test_server_errors_are_retried_until_delivered(tmp_path: Path) -> None:
    with WebhookReceiver(replies=[503, 503, 200]) as hook, capture_logs() as logs:
        policy = load_policy(tmp_path, {"url": hook.url("/hook"), "attempts": 3})
        [delivery] = send_notifications(policy, run_event(), NO_WAIT)

    assert (delivery.delivered, delivery.attempts, delivery.status) == (True, 3, 200)
    assert len(hook.requests) == 3
    retries = [e for e in logs if e["event"] == "notification retry"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert "503" in retries[0]["error"]
    assert [e["event"] for e in logs if e["log_level"] == "info"] == ["notification sent"]


def test_too_many_requests_is_retried_and_the_last_status_reported(tmp_path: Path) -> None:
    with WebhookReceiver(replies=[429, 500]) as hook:
        policy = load_policy(tmp_path, {"url": hook.url("/hook"), "attempts": 2})
        [delivery] = send_notifications(policy, run_event(), NO_WAIT)

    assert (delivery.delivered, delivery.attempts, delivery.status) == (False, 2, 500)
    assert len(hook.requests) == 2


def test_client_error_is_not_retried(tmp_path: Path) -> None:
    reply = Reply(400, b'{"error": "invalid label set"}')
    with WebhookReceiver(replies=[reply]) as hook, capture_logs() as logs:
        policy = load_policy(tmp_path, {"url": hook.url("/hook"), "attempts": 3})
        [delivery] = send_notifications(policy, run_event(), NO_WAIT)

    assert (delivery.delivered, delivery.attempts, delivery.status) == (False, 1, 400)
    assert "invalid label set" in (delivery.error or "")
    assert len(hook.requests) == 1
    assert [e["event"] for e in logs] == ["notification failed"]
    assert logs[0]["log_level"] == "error"


def test_redirect_is_not_followed_so_the_token_stays_home(
    tmp_path: Path, hook: WebhookReceiver, token_file: Path
) -> None:
    elsewhere = Reply(302, headers={"Location": hook.url("/stolen")})
    with WebhookReceiver(replies=[elsewhere]) as first:
        policy = load_policy(tmp_path, {"url": first.url("/hook"), "token_file": str(token_file)})
        [delivery] = send_notifications(policy, run_event(), NO_WAIT)

    assert (delivery.delivered, delivery.attempts, delivery.status) == (False, 1, 302)
    assert "redirects are not followed" in (delivery.error or "")
    assert hook.requests == []


def test_dead_webhook_fails_quickly_without_raising(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    policy = load_policy(tmp_path, {"url": url, "attempts": 3, "timeout": "2s"})

    began = time.monotonic()
    [delivery] = send_notifications(policy, run_event(), NO_WAIT)

    assert time.monotonic() - began < 2
    assert (delivery.delivered, delivery.attempts, delivery.status) == (False, 3, None)
    assert "refused" in (delivery.error or "").lower()


def test_hanging_webhook_is_abandoned_after_attempts_times_timeout(tmp_path: Path) -> None:
    with WebhookReceiver(delay=30) as hook:
        target = NotifyTarget(url=hook.url("/hook"), timeout=timedelta(seconds=0.3), attempts=2)
        policy = with_targets(load_policy(tmp_path), target)

        began = time.monotonic()
        [delivery] = send_notifications(policy, run_event(), NO_WAIT)
        took = time.monotonic() - began

        assert len(hook.wait_for(2)) == 2
    assert 0.6 <= took < 2, took
    assert (delivery.delivered, delivery.attempts) == (False, 2)
    assert "timed out" in (delivery.error or "")


def test_a_failing_target_does_not_stop_the_next(tmp_path: Path, hook: WebhookReceiver) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    policy = load_policy(
        tmp_path,
        {"url": dead, "attempts": 2},
        {"url": hook.url("/alive"), "token_file": str(token)},
        {"url": hook.url("/alive")},
    )
    token.unlink()  # gone since the policy was loaded

    deliveries = send_notifications(policy, run_event(), NO_WAIT)

    assert [(d.delivered, d.attempts) for d in deliveries] == [(False, 2), (False, 0), (True, 1)]
    assert f"cannot read secret file {token}" in (deliveries[1].error or "")
    assert len(hook.requests) == 1  # the target without its token sent nothing


def test_a_bug_building_the_body_is_reported_not_raised(
    tmp_path: Path, hook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: RunEvent) -> dict[str, Any]:
        raise KeyError("oops")

    monkeypatch.setattr(RunEvent, "to_dict", broken)
    policy = load_policy(tmp_path, {"url": hook.url("/hook")})

    with capture_logs() as logs:
        [delivery] = send_notifications(policy, run_event(), NO_WAIT)

    assert (delivery.delivered, delivery.attempts) == (False, 0)
    assert delivery.error == "KeyError: 'oops'"
    assert logs[-1]["event"] == "notification failed"
    assert hook.requests == []


# --- secrets ----------------------------------------------------------------------------


def test_token_and_query_never_reach_logs_or_results(tmp_path: Path, token_file: Path) -> None:
    echo = Reply(500, f'{{"error": "unknown token {TOKEN}", "key": "qs-secret-77"}}'.encode())
    with WebhookReceiver(replies=[echo, echo]) as hook, capture_logs() as logs:
        url = hook.url("/hook?key=qs-secret-77")
        policy = load_policy(tmp_path, {"url": url, "token_file": str(token_file), "attempts": 2})
        deliveries = send_notifications(policy, run_event(), NO_WAIT)

    assert hook.requests[0].query == {"key": ["qs-secret-77"]}  # the key was sent ...
    assert hook.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    seen = repr(logs) + repr(deliveries)  # ... but never shown
    assert TOKEN not in seen
    assert "qs-secret-77" not in seen
    assert {e["url"] for e in logs} == {hook.url("/hook")}
    assert "unknown token ***" in (deliveries[0].error or "")
    assert [e["event"] for e in logs] == ["notification retry", "notification failed"]


# --- policy validation ------------------------------------------------------------------

BAD_TARGETS: list[tuple[str, dict[str, Any], str, str]] = [
    ("ftp-url", {"url": "ftp://x"}, "notify[0].url", "expected an http:// or https:// URL"),
    ("credentials", {"url": "http://user:pw@host/"}, "notify[0].url", "token_file or token_env"),
    (
        "unknown-when",
        {"url": "http://host/", "when": ["sometimes"]},
        "notify[0].when[0]",
        "sometimes",
    ),
    ("empty-when", {"url": "http://host/", "when": []}, "notify[0].when", "at least 1 item"),
    (
        "unset-token-env",
        {"url": "http://host/", "token_env": "BACKUPCTL_TEST_NO_SUCH_TOKEN"},
        "notify[0].token_env",
        "BACKUPCTL_TEST_NO_SUCH_TOKEN is not set",
    ),
    (
        "missing-token-file",
        {"url": "http://host/", "token_file": "/nonexistent/token"},
        "notify[0].token_file",
        "does not exist",
    ),
]


@pytest.mark.parametrize(
    ("target", "field", "message"), [c[1:] for c in BAD_TARGETS], ids=[c[0] for c in BAD_TARGETS]
)
def test_bad_notify_target_is_a_policy_error(
    tmp_path: Path, target: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(PolicyError) as raised:
        load_policy(tmp_path, target)
    [problem] = raised.value.problems
    assert problem.field == field
    assert message in problem.message
    assert "pw@" not in problem.message


def test_cli_validate_reports_every_bad_notify_target(tmp_path: Path) -> None:
    path = policy_file(tmp_path, [target for _, target, _, _ in BAD_TARGETS])

    result = run_backupctl(["policy", "validate", str(path)])

    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    for index, (_, _, field, message) in enumerate(BAD_TARGETS):
        field = field.replace("notify[0]", f"notify[{index}]")
        line = next(n for n in result.stderr.splitlines() if f" {field}:" in n)
        assert line.startswith(f"{path}:"), line
        assert message in line, line


def test_when_reads_as_written_by_hand(tmp_path: Path) -> None:
    # (not `on:`: YAML 1.1 reads an unquoted `on` key as the boolean true)
    path = tmp_path / "shop-db.yaml"
    path.write_text(
        policy_file(tmp_path, [{"url": "http://host/"}])
        .read_text()
        .replace("- url: http://host/", "- url: http://host/\n  when: [failure, success]")
    )
    [policy] = load_policies(path)
    assert policy.notify[0].when == ["failure", "success"]
