"""Credentials never leave the process: the userinfo of every URL in a text is masked,
`scheme://user:password@host` becoming `scheme://user:***@host` and `scheme://token@host`
becoming `scheme://***@host`, in everything written to MLflow, Optuna or the terminal."""

from __future__ import annotations

import re
from typing import Any

# A URL's scheme and its netloc (RFC 3986: what follows `//` up to the path). A password
# may hold an unescaped '@' (`ann:p@ss@db`), so the netloc runs to the first '/', blank or
# quote, and its host is what follows its *last* '@', as urllib.parse splits it.
_NETLOC = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<netloc>[^/\s'\"]*)")
# A password may hold an unescaped '/' too (base64: `ann:ab/cd+ef@db`, which SQLAlchemy reads
# as the password `ab/cd+ef`): a URL whose netloc would end at a '/' after `user:` and a
# non-numeric start (no port), with an '@' further on before any '?' or '#'.
_SLASHED = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<netloc>[^/\s'\"@:]*:(?!\d+(?:/|$))"
                      r"[^\s'\"?#]*@[^/\s'\"?#@]*)")
# credentials given as query parameters: `?user=ann&password=...`
_QUERY = re.compile(r"(?i)(?P<key>[?&;](?:password|passwd|pwd|token|secret|access_token|api_key)=)"
                    r"(?P<value>[^&;\s'\"#]+)")


def _mask(m: re.Match) -> str:
    netloc = m["netloc"]
    if "@" not in netloc:
        return m[0]
    userinfo, host = netloc.rsplit("@", 1)
    user, colon, _ = userinfo.partition(":")
    # user:password keeps the user (who it is is no secret); a lone userinfo is a token
    return f"{m['scheme']}{user + ':***' if colon else '***'}@{host}"


def redact(text: str) -> str:
    """`text` with the userinfo secret of every URL in it replaced by ***."""
    return _QUERY.sub(r"\g<key>***", _NETLOC.sub(_mask, _SLASHED.sub(_mask, text)))


def redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value
