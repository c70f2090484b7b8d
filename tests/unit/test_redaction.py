"""The structlog redaction processor: credentials never reach a log line, and what only
looks similar (backup ids, sha256 hashes, GTIDs, object keys, paths to secret files)
stays readable.

``BACKUPCTL_REDACTION_EXAMPLES`` sets the examples per property (default 300).
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backupctl.log import configure, format_exception, redact_secrets, scrubbed_traceback
from backupctl.redaction import MASK, is_secret_key, scrub

EXAMPLES = int(os.environ.get("BACKUPCTL_REDACTION_EXAMPLES", "300"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SECRET = "hunter2-Xy9/kq+Zr="
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "-----END RSA PRIVATE KEY-----"
)

# ----------------------------------------------------------------- masked: (text, secret)

MASKED = [
    (f"mysql://backup:{SECRET}@db:3306/shop", SECRET),
    (f"connecting to https://user:{SECRET}@es.example:9200/_snapshot", SECRET),
    (f"Authorization: Bearer {SECRET}", SECRET),
    (f'{{"authorization": "ApiKey {SECRET}"}}', SECRET),
    ("headers={'Authorization': 'Basic dXNlcjpodW50ZXIy'}", "dXNlcjpodW50ZXIy"),
    (f"sent Bearer {SECRET} to the hook", SECRET),
    ("Basic YmFja3VwOmh1bnRlcjI= was refused", "YmFja3VwOmh1bnRlcjI="),
    (f"password={SECRET} user=backup", SECRET),
    (f"pwd={SECRET}&host=db", SECRET),
    (f"mariabackup --password={SECRET} --user=backup", SECRET),
    (f"mariabackup --password {SECRET} --user backup", SECRET),
    (f'[client]\npassword="{SECRET}"\nuser=backup', SECRET),
    (f"'password': '{SECRET}'", SECRET),
    (f'"db_password": "{SECRET}"', SECRET),
    (f"MYSQL_PWD={SECRET}", SECRET),
    (f"token={SECRET}; retrying", SECRET),
    (f"?api_key={SECRET}&x=1", SECRET),
    (f"X-Api-Key: {SECRET}", SECRET),
    (f"secretKey={SECRET}", SECRET),
    (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
    (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET),
    (f"CREATE USER x IDENTIFIED BY '{SECRET}'", SECRET),
    (f"ALTER USER x IDENTIFIED VIA ed25519 USING '{SECRET}'", SECRET),
    (f"SET PASSWORD = PASSWORD('{SECRET}')", SECRET),
    (f"key material:\n{PEM}\nafter", "MIIEowIBAAKCAQEAu1SU1Lf"),
    ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC (cut)", "MIIEvQIBADANBgkq"),
    (f"password={SECRET}password=again", SECRET),  # a value that runs into the next key
    (f"key=password={SECRET}", SECRET),  # an assignment inside another one's value
    (f"password token={SECRET}", SECRET),  # prose before an assignment
    (f"connection.password: {SECRET}", SECRET),  # a dotted key: judged by its last part
]


@pytest.mark.parametrize(("text", "secret"), MASKED)
def test_credentials_in_text_are_masked(text: str, secret: str) -> None:
    cleaned = scrub(text)
    assert secret not in cleaned
    assert MASK in cleaned


def test_masking_keeps_what_helps_to_debug() -> None:
    assert scrub(f"mysql://backup:{SECRET}@db:3306/shop") == "mysql://backup:***@db:3306/shop"
    assert scrub(f"Authorization: Bearer {SECRET}") == "Authorization: Bearer ***"
    assert scrub(f"password={SECRET} user=backup") == "password=*** user=backup"
    assert scrub(f'"password": "{SECRET}", "user": "b"') == '"password": "***", "user": "b"'
    assert scrub(f"IDENTIFIED BY '{SECRET}'") == "IDENTIFIED BY '***'"
    assert scrub(PEM + "\nnext line") == "-----BEGIN RSA PRIVATE KEY-----***\nnext line"


# --------------------------------------------------------------- left alone: false positives

UNCHANGED = [
    "backup 20261122T020000Z-49d5ca of shop stored",
    "key=shop/full/20261122T020000Z-49d5ca/data.mbstream.zst",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 matches",
    "gtid 0-1-42,1-2-7 replayed; gtid_binlog_pos=0-1-42",
    "binlog mysql-bin.000042:1234 sealed",
    "password_file=/etc/backupctl/secrets/shop-db",
    "token_file: /etc/backupctl/secrets/hook",
    "password_env=SHOP_DB_PASSWORD api_key_env=ES_KEY",
    "encryption key_id=3f9a1c2b0e7d",
    "the password file /etc/backupctl/secrets/shop is not 0600",
    "Access denied for user 'backup'@'localhost' (using password: YES)",
    "Basic checks passed",
    "Basic authentication is configured",
    "s3://backups/prefix and file:///var/backups/backupctl",
    "ssh://git@github.com/org/repo.git",
    "user@example.com asked for a restore",
    "monkey=1 turkey: 2 keys=3",
    "policies/shop-secret.yaml:8 connection.password_file: secret file /x does not exist",
    "tokens.json: 3 entries",
    "GRANT SELECT ON *.* TO `weak`@`%` IDENTIFIED BY PASSWORD '***'",  # masked already
    "mariabackup: password='***' user=backup",
    "tokenizer.json 12 MB, 32000 tokens",
    "",
]


@pytest.mark.parametrize("text", UNCHANGED)
def test_what_only_looks_like_a_credential_is_left_alone(text: str) -> None:
    assert scrub(text) == text


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("db_password", True),
        ("passwd", True),
        ("pwd", True),
        ("secret", True),
        ("client_secret", True),
        ("token", True),
        ("auth_token", True),
        ("api_key", True),
        ("apikey", True),
        ("X-Api-Key", True),
        ("authorization", True),
        ("Authorization", True),
        ("aws_secret_access_key", True),
        ("secretKey", True),
        ("private_key", True),
        ("key_material", True),
        ("encryption_key", True),
        ("sse_customer_key", True),
        ("encryption_key_id", False),
        ("encryption_key_file", False),
        ("basic_auth", True),
        ("credentials", True),
        ("password_file", False),
        ("token_env", False),
        ("api_key_file", False),
        ("key", False),
        ("key_id", False),
        ("backup_id", False),
        ("tokens", False),
        ("tokenizer", False),
        ("access_key", False),
        ("keyword", False),
        ("event", False),
    ],
)
def test_key_names(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


# --------------------------------------------------------------------- the processor


def test_the_processor_masks_values_of_credential_keys_at_any_depth() -> None:
    event = {
        "event": "connecting",
        "password": SECRET,
        "pin": 1234,
        "connection": {"user": "backup", "password": SECRET, "password_file": "/etc/pw"},
        "headers": [("Authorization", f"Bearer {SECRET}")],
        "token": None,
        "password_set": True,
        "backup_id": "20261122T020000Z-49d5ca",
    }
    out = redact_secrets(None, "info", event)
    assert SECRET not in json.dumps(out)
    assert out["password"] == MASK
    assert out["connection"] == {"user": "backup", "password": MASK, "password_file": "/etc/pw"}
    assert out["headers"] == [("Authorization", "Bearer ***")]
    assert out["token"] is None and out["password_set"] is True  # nothing to hide
    assert out["backup_id"] == "20261122T020000Z-49d5ca" and out["pin"] == 1234


class _Leaky:
    def __repr__(self) -> str:
        return f"<Conn mysql://backup:{SECRET}@db>"


class _Broken:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_objects_rendered_by_repr_are_masked_and_broken_ones_do_not_lose_the_line() -> None:
    plain = object()
    out = redact_secrets(None, "info", {"event": "x", "conn": _Leaky(), "p": plain})
    assert out["conn"] == "<Conn mysql://backup:***@db>"
    assert out["p"] is plain  # nothing to mask: the object itself is kept
    broken = redact_secrets(None, "info", {"event": "x", "b": _Broken()})
    assert broken["b"] == "<unrepresentable _Broken>"


def test_bytes_and_cycles() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    out = redact_secrets(None, "info", {"event": "x", "raw": b"password=" + SECRET.encode()})
    assert out["raw"] == "password=***"
    assert redact_secrets(None, "info", {"event": "x", "c": cycle})["c"]  # no RecursionError


def _raise_with_secret() -> None:
    raise ValueError(f"cannot connect to mysql://backup:{SECRET}@db (password={SECRET})")


def _log_an_exception(fmt: str) -> str:
    """Log an exception through the configured chain; return what reached stderr."""
    saved_config, saved_stderr = structlog.get_config(), sys.stderr
    sys.stderr = buffer = io.StringIO()
    try:
        configure(fmt, verbose=1)  # type: ignore[arg-type]
        try:
            _raise_with_secret()
        except ValueError:
            structlog.get_logger().exception("failed", url=f"https://u:{SECRET}@h/")
    finally:
        sys.stderr = saved_stderr
        structlog.configure(**saved_config)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_tracebacks_are_masked_in_both_formats(fmt: str) -> None:
    output = _log_an_exception(fmt)
    assert "Traceback" in output and "_raise_with_secret" in output  # the traceback is there
    assert SECRET not in output
    assert "mysql://backup:***@db" in output
    if fmt == "json":
        line = json.loads(output.splitlines()[0])
        assert line["url"] == "https://u:***@h/" and "ValueError" in line["exception"]


def test_exception_helpers_mask() -> None:
    try:
        _raise_with_secret()
    except ValueError as exc:
        assert SECRET not in format_exception(exc)
        sio = io.StringIO()
        scrubbed_traceback(sio, (type(exc), exc, exc.__traceback__))
        assert "ValueError" in sio.getvalue() and SECRET not in sio.getvalue()


# --------------------------------------------------------------------- properties

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    _text,
    st.binary(max_size=40),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(_text, st.integers()), inner, max_size=4),
    ),
    max_leaves=20,
)
_keys = st.one_of(_text, st.sampled_from(["password", "token", "api_key", "event", "exception"]))


@PROPERTY
@given(st.dictionaries(_keys, _values, max_size=8))
@pytest.mark.slow
def test_the_processor_never_crashes_and_always_renders(event: dict[str, Any]) -> None:
    out = redact_secrets(None, "info", dict(event))
    assert set(out) == set(event)
    structlog.processors.JSONRenderer()(None, "info", dict(out))


#: a secret as it would be generated: no spaces, often base64 or hex
_secrets = st.text(
    st.sampled_from("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789+/=_-."),
    min_size=12,
    max_size=48,
).filter(lambda s: s.strip("=+/_-.") == s and MASK not in s)
_templates = st.sampled_from(
    [
        "mysql://backup:{s}@db/shop",
        "https://elastic:{s}@es:9200",
        "Authorization: Bearer {s}",
        "authorization={s}",
        "password={s}",
        "pwd={s}",
        "--password={s}",
        "--password {s}",
        '"password": "{s}"',
        "'api_key': '{s}'",
        "token: {s}",
        "client_secret={s}",
        "aws_secret_access_key={s}",
        "IDENTIFIED BY '{s}'",
        "-----BEGIN EC PRIVATE KEY-----\n{s}\n-----END EC PRIVATE KEY-----",
    ]
)
_prose = st.text(st.sampled_from("abcdef xyz.:,;()[]{}\n"), max_size=20)


@PROPERTY
@given(_secrets, _templates, _prose, _prose)
def test_a_planted_secret_never_survives(
    secret: str, template: str, before: str, after: str
) -> None:
    text = before + " " + template.format(s=secret) + " " + after
    assert secret not in scrub(text)
    line = structlog.processors.JSONRenderer()(
        None, "info", redact_secrets(None, "info", {"event": "e", "detail": text})
    )
    assert secret not in str(line)


@PROPERTY
@given(_secrets)
def test_basic_credentials_are_masked_whatever_the_secret(secret: str) -> None:
    encoded = base64.b64encode(f"backup:{secret}".encode()).decode()
    assert encoded not in scrub(f"Authorization: Basic {encoded}")
    assert encoded not in scrub(f"sent Basic {encoded}")


_backup_ids = st.builds(
    lambda d, h: f"{d}T{h}Z-{os.urandom(3).hex()}",
    st.from_regex(r"20[0-9]{2}[01][0-9][0-3][0-9]", fullmatch=True),
    st.from_regex(r"[0-2][0-9][0-5][0-9][0-5][0-9]", fullmatch=True),
)
_hashes = st.binary(min_size=32, max_size=32).map(lambda b: b.hex())
_gtids = st.lists(
    st.tuples(st.integers(0, 9), st.integers(1, 99), st.integers(1, 10**9)), min_size=1
).map(lambda g: ",".join(f"{d}-{s}-{n}" for d, s, n in g))
_benign = st.one_of(_backup_ids, _hashes, _gtids)


@PROPERTY
@given(st.lists(_benign, min_size=1, max_size=5), st.sampled_from([" ", ", ", "/", "="]))
def test_backup_ids_hashes_and_gtids_are_never_masked(parts: list[str], sep: str) -> None:
    text = sep.join(parts)
    for line in (text, f"backup_id={text}", f"sha256: {text}", f"gtid {text} replayed"):
        assert scrub(line) == line
