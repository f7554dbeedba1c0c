"""Redaction: every message the engine produces (errors, logs) passes through ``scrub`` first."""

from __future__ import annotations

import re

# A URL's query (where presigned URLs carry X-Amz-Signature, Credential, Expires, ...) and fragment.
_URL_QUERY = re.compile(r"""((?:https?|s3|gs|file)://[^\s"'<>?#]*)[?#][^\s"'<>]*""", re.IGNORECASE)
# Credentials a provider or gateway may echo back from our request headers.
_BEARER = re.compile(r"(Bearer|Basic|Token)(\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` fit for logs and errors: no secret, no bearer token, no URL query (signatures)."""
    if not text:
        return text
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _BEARER.sub(r"\1\2***", text)
    return _URL_QUERY.sub(r"\1?…", text)
