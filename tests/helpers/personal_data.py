"""Personal data a test feeds the service, and how to look for it in what the service keeps or says."""

from __future__ import annotations

import re

PHONES = ["+86 138-0013-8000", "13912345678", "137 0013 7000"]
BIRTH_DATES = ["1990-07-15", "1985-12-03"]


def in_clear(text: str, secret: str) -> bool:
    """Whether ``secret`` (a phone's digits or a date) appears in ``text``, with or without separators."""
    digits = re.sub(r"\D", "", secret)
    if len(digits) > 8:  # a phone: the national number, however it is spaced
        digits = digits[-11:]
    return re.search(r"[\s\-/.]?".join(digits), text) is not None
