"""One phone normaliser for comparisons with what an API answers.

The rule (the same for every target): compare normalised E.164 on both sides.  An API may
return a phone with or without ``+``, with blanks or dashes; the file's phones are E.164
already.  Both are reduced to ``+`` and the digits before comparing.
"""

from __future__ import annotations

import re

_NOT_DIGITS = re.compile(r"\D")


def norm_phone(value: object) -> str | None:
    """``+`` and the digits of ``value``; None when it has no digit (None, ``""``, ``"-"``)."""
    if value is None:
        return None
    digits = _NOT_DIGITS.sub("", str(value))
    return f"+{digits}" if digits else None


def search_digits(phone: str) -> str:
    """The digits to send as a listing's ``search`` for ``phone``: a substring of the stored
    number however the API writes it (with or without ``+``)."""
    return _NOT_DIGITS.sub("", phone)
