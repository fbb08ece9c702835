"""Text a server wrote, made fit for a log line: our secrets hidden, its reason phrase not echoed.

A server may echo what it was sent — an ``Authorization`` header, a URL's path — in its body or
even in its HTTP reason phrase, changed in case or cut short. Whatever of its text reaches a
message passes through here first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus

HIDDEN = "(hidden)"
PIECE = 8
"""A run of this many characters of a secret is taken for the secret (a truncated echo)."""
SHORTEST = 4
"""Shorter values (a header such as ``X-Version: 1``) are no secret, and hiding them would
hide half the text."""
_TOKEN = re.compile(r"[^\s\"'<>(),;:{}\[\]]+")


def hide(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret hidden: in any case, inside a longer word, or cut to
    :data:`PIECE` characters or more."""
    folded = [s.casefold() for s in secrets if len(s) >= SHORTEST]
    if not folded or not text:
        return text
    for secret in folded:
        text = re.sub(re.escape(secret), HIDDEN, text, flags=re.IGNORECASE)

    def mask(match: re.Match[str]) -> str:
        word = match.group(0)
        low = word.casefold()
        for secret in folded:
            if len(low) >= PIECE and (low in secret or _shares_piece(low, secret)):
                return HIDDEN
        return word

    return _TOKEN.sub(mask, text)


def _shares_piece(word: str, secret: str) -> bool:
    """Whether ``word`` holds :data:`PIECE` consecutive characters of ``secret``."""
    if len(secret) < PIECE:
        return False
    return any(secret[i : i + PIECE] in word for i in range(len(secret) - PIECE + 1))


def reason(status: int) -> str:
    """The standard reason phrase of ``status`` (never the server's own: it is server text
    that may echo a header)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
