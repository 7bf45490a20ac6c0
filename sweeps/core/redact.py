"""Credentials never leave the process: `scheme://user:password@host` becomes
`scheme://user:***@host` in everything written to MLflow, Optuna or the terminal."""

from __future__ import annotations

import re
from typing import Any

# user:password@ (or a lone token@) right after a URL scheme
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s'\"]*):(?P<secret>[^@/\s'\"]+)@")


def redact(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value
