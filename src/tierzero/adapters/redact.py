"""Mask secrets in text before it reaches a log file or a terminal."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

MASK = "***"

# Shapes that are secrets whoever passed them: key blocks, provider tokens, credentials in URLs,
# and `key = value` pairs whose key names a secret.
_TOKEN_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]+"),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"),
    re.compile(r"\btskey-[A-Za-z0-9-]{10,}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{8,}=*"),
)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/\s:@]+):(?P<pw>[^/\s@]+)@")
_SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)
    (?P<key>["']?[a-z0-9_.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)[a-z0-9_.-]*["']?)
    (?P<sep>\s*[:=]\s*)
    (?P<quote>["']?)(?P<value>[^\s"',}]+)
    """
)


class Redactor:
    """Replaces known secret values and token-shaped strings with ***."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        # Very short values would mask ordinary words and numbers all over the log.
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    def redact(self, text: str, *, assignments: bool = True) -> str:
        """`text` with known secrets, token shapes and URL passwords masked; `assignments` also
        masks the value of every `key = value` / `key: value` whose key names a secret (off for
        tierzero's own messages, whose `field.path.token: problem` lines would lose the problem)."""
        # Longest first, so a secret containing another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        for pattern in _TOKEN_PATTERNS:
            text = pattern.sub(MASK, text)
        text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
        return _SECRET_ASSIGNMENT.sub(_mask_assignment, text) if assignments else text


def _mask_assignment(match: re.Match[str]) -> str:
    if match["value"] == MASK:
        return match[0]
    return f"{match['key']}{match['sep']}{match['quote']}{MASK}"


_process_lock = threading.Lock()
_process: Redactor | None = None


def process_redactor() -> Redactor:
    """The redactor every log writer and terminal line of this process uses (one shared instance).

    Secrets resolved anywhere in the process are added to it, so any text passed through it is masked.
    """
    global _process
    with _process_lock:
        if _process is None:
            _process = Redactor()
        return _process


def redact(text: str, *, assignments: bool = True) -> str:
    """`process_redactor().redact(text, assignments=...)`."""
    return process_redactor().redact(text, assignments=assignments)
