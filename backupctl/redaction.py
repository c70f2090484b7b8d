"""Secret redaction: the one home of what counts as a credential and how it is masked.

Logs (``backupctl.log``), the output of child processes kept in errors and logs
(mariabackup's log, hooks' output), run events, error messages and notifications all
pass through here, so they mask the same things the same way (``***``):

- values of keys that name a credential (``password``, ``token``, ``api_key``,
  ``authorization``, …; not ``password_file``): ``redact_item`` / ``redact_value``;
- what looks like one inside any text (URL userinfo, ``Authorization`` headers,
  bearer/API-key/basic credentials, ``password=…`` assignments, SQL ``IDENTIFIED BY
  '…'`` and ``PASSWORD('…')``, PEM private keys): ``scrub``;
- secrets known by value (a webhook's bearer token, a URL's query string):
  ``KnownSecrets``; URLs as they may be shown: ``redact_url``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

#: what a masked secret is replaced with
MASK = "***"

# -- key names --------------------------------------------------------------------------

#: a key (or option) holding one of these words names a credential
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "secret",
        "token",
        "apikey",
        "authorization",
        "credential",
        "credentials",
        "cookie",
        "signature",
    }
)
#: ... and so do these pairs of adjacent words (``api_key``, ``private-key``, ``secretKey``)
_SECRET_PAIRS = frozenset(
    {
        ("api", "key"),
        ("private", "key"),
        ("secret", "key"),
        ("auth", "key"),
        ("key", "material"),
        ("encryption", "key"),
        ("master", "key"),
        ("signing", "key"),
        ("customer", "key"),
        ("basic", "auth"),
        ("http", "auth"),
        ("client", "secret"),
    }
)
#: ... unless the last word says the value only points at the secret: ``password_file``
_REFERENCE_WORDS = frozenset({"file", "env", "path", "id", "name", "type", "source"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=2048)
def is_secret_key(name: str) -> bool:
    """True when a key or option named ``name`` holds a credential (``db_password``,
    ``X-Api-Key``, ``aws_secret_access_key``), False for ``password_file``, ``key``,
    ``key_id``, ``backup_id``."""
    words = [w for w in _NON_ALNUM.split(_CAMEL.sub("_", name).lower()) if w]
    if not words or words[-1] in _REFERENCE_WORDS:
        return False
    if any(w in _SECRET_WORDS or "password" in w or "passwd" in w for w in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


# -- patterns inside text ---------------------------------------------------------------

#: a cheap first look: text without any of these holds nothing the patterns below mask
_TRIGGER = re.compile(
    r"pass|pwd|secret|token|key|auth|bearer|basic|cookie|signature|credential|identified"
    r"|://\S*@|-----BEGIN",
    re.IGNORECASE,
)
_PEM = re.compile(
    r"(-----BEGIN (?P<kind>[A-Z0-9 ]*)PRIVATE KEY-----)"
    r"(?:.*?-----END (?P=kind)PRIVATE KEY-----|.*\Z)",
    re.DOTALL,
)
#: scheme://user:password@host (the user stays, it helps and is no secret); the password
#: runs to the last @ of the word, as people do write "/" or "@" unencoded in one
_URL_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/?#@]*):[^\s]*@")
#: Authorization: Bearer xyz / "authorization": "Basic xyz" / authorization=xyz
_AUTH_HEADER = re.compile(
    r"(?P<head>\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
    r"(?:(?:bearer|basic|apikey|token|digest|negotiate|aws4-hmac-sha256)\s+)?)"
    r"[^\s\"']+",
    re.IGNORECASE,
)
#: a bearer token or an API key in the middle of a line (as Elasticsearch clients send it)
_SCHEME_TOKEN = re.compile(r"\b(?P<head>(?:Bearer|ApiKey)\s+)[A-Za-z0-9._~+/=-]{8,}")
#: Basic <base64 of user:password>; only masked when it decodes to that, not in prose
_BASIC = re.compile(r"\b(?P<head>Basic\s+)(?P<value>[A-Za-z0-9+/]{4,}={0,2})(?![A-Za-z0-9+/=])")
#: key=value, key: value, "key": "value", --key value: the value is masked when ``key``
#: names a secret (the key and separator only: the value is matched by ``_VALUE``)
_ASSIGNMENT = re.compile(
    r"(?P<key>(?<![\w.-])[\w.-]*?"
    r"(?:pass|pwd|secret|token|key|auth|cookie|signature|credential)[\w.-]*)"
    r"(?P<sep>[\"']?[ \t]*[:=][ \t]*|[ \t]+)",
    re.IGNORECASE,
)
_VALUE = re.compile(r"(?P<quote>[\"'])(?P<quoted>[^\"'\n]*)(?P=quote)|(?P<bare>[^\s&]+)")
#: SQL: IDENTIFIED BY 'x', IDENTIFIED VIA plugin USING 'x', PASSWORD('x'), PASSWORD 'x'
_SQL = re.compile(
    r"(?P<head>\b(?:IDENTIFIED\s+(?:BY|VIA\s+\w+\s+USING)\s*|PASSWORD\s*\(\s*|PASSWORD\s+))"
    r"'(?!\*\*\*')[^']*'",  # a value masked already stays as it is
    re.IGNORECASE,
)
#: values masked already
_MASKED = (MASK, f"'{MASK}'")
#: MariaDB's "Access denied ... (using password: YES)" says whether one was sent, no more
_NOT_SECRETS = frozenset({"YES", "NO"})


def _mask_basic(match: re.Match[str]) -> str:
    try:
        decoded = base64.b64decode(match["value"], validate=True)
    except (binascii.Error, ValueError):
        return match[0]
    return match["head"] + MASK if b":" in decoded else match[0]


def _mask_assignments(text: str) -> str:
    out, done = [], 0
    for match in _ASSIGNMENT.finditer(text):
        key, sep = match["key"], match["sep"]
        # a dotted key is judged by its last part: connection.password, not shop-secret.yaml
        if match.start() < done or not is_secret_key(key.lstrip("-").rsplit(".", 1)[-1]):
            continue
        if key.lower().endswith("authorization"):
            continue  # _AUTH_HEADER masked the credential and kept the scheme
        # "--password value" and "password: value", not prose ("the password file is")
        if not sep.strip() and not key.startswith("-"):
            continue
        value = _VALUE.match(text, match.end())
        if value is None:
            continue
        bare = value["bare"] or ""
        if bare.rstrip(",;)]}").upper() in _NOT_SECRETS or bare.startswith(_MASKED):
            continue
        if value["quoted"] in _MASKED:
            continue
        quote = value["quote"] or ""
        out += [text[done : match.end()], quote, MASK, quote]
        done = value.end()
    return "".join(out) + text[done:] if out else text


def scrub(text: str) -> str:
    """``text`` with whatever looks like a credential masked as ``***``: URL passwords,
    Authorization headers and bearer/API-key/basic credentials, ``secret=value``
    assignments (``password``, ``pwd``, ``token``, ``api_key``, ``aws_secret_access_key``,
    …; not ``password_file``), SQL ``IDENTIFIED BY '…'`` and PEM private keys."""
    if not _TRIGGER.search(text):
        return text
    text = _PEM.sub(lambda m: f"{m[1]}{MASK}", text)
    text = _URL_USERINFO.sub(rf"\g<head>:{MASK}@", text)
    text = _AUTH_HEADER.sub(rf"\g<head>{MASK}", text)
    text = _SCHEME_TOKEN.sub(rf"\g<head>{MASK}", text)
    text = _BASIC.sub(_mask_basic, text)
    text = _SQL.sub(rf"\g<head>'{MASK}'", text)
    return _mask_assignments(text)


_MAX_DEPTH = 8
_PLAIN = (int, float, bool, type(None))


def redact_value(value: Any, depth: int = 0) -> Any:
    """``value`` with credentials masked: text scrubbed, mappings by key (``redact_item``)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, _PLAIN):
        return value
    if depth >= _MAX_DEPTH:
        return MASK  # deeper than any real log value: a cycle, or not worth the risk
    if isinstance(value, Mapping):
        return {k: redact_item(k, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [redact_value(v, depth + 1) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", "replace")
        cleaned = scrub(text)
        return value if cleaned == text else cleaned
    # other objects are rendered with repr(): keep them unless that shows a secret
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not lose the log line
        return f"<unrepresentable {type(value).__name__}>"
    cleaned = scrub(text)
    return value if cleaned == text else cleaned


def redact_item(key: object, value: Any, depth: int = 0) -> Any:
    """``value`` masked whole when ``key`` names a credential, else ``redact_value``."""
    if isinstance(key, str) and is_secret_key(key) and value is not None:
        return value if isinstance(value, bool) else MASK
    return redact_value(value, depth)


def redact_url(url: str) -> str:
    """``url`` as it may be logged: ``scheme://host:port/path``, no credentials or query."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


class KnownSecrets:
    """Masks secrets known by value in any text: each one as a whole (and as ``repr``
    shows it), and a URL's query string and its values of 4 characters or more, as a
    server may echo one back; the URL itself is shown as ``redact_url`` does."""

    def __init__(self, url: str | None = None, secrets: Iterable[str | None] = ()):
        self.url = url
        found = {s for s in secrets if s}
        if url:
            parts = urlsplit(url)
            values = [value for _, value in parse_qsl(parts.query) if len(value) >= 4]
            found |= {s for s in (parts.query, parts.fragment, *values) if s}
        self._secrets = sorted(found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        if self.url:
            text = text.replace(self.url, redact_url(self.url))
        for secret in self._secrets:
            text = text.replace(secret, MASK).replace(repr(secret)[1:-1], MASK)
        return text
