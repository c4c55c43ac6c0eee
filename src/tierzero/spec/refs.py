"""Secret references. The spec never holds a secret, only where to find one."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

SECRET_REF_PATTERN = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:\S.*|sops:[^#\s]+#[A-Za-z0-9_.\[\]\-/]+)$")
SECRET_REF_HELP = "a reference: env:NAME, file:PATH or sops:PATH#key"


def _check_secret_ref(value: str) -> str:
    if not SECRET_REF_PATTERN.match(value):
        # Never echo the value back: it may be the very secret we refuse to store.
        raise ValueError(f"plaintext secrets are not allowed here; expected {SECRET_REF_HELP}")
    return value


SecretRef = Annotated[str, AfterValidator(_check_secret_ref)]
