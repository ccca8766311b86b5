"""Text that can be sent to a provider and stored: valid Unicode, i.e. encodable as UTF-8.

Python strings may hold lone surrogates: the command line decodes bytes that are not UTF-8 into
them (`surrogateescape`), and JSON may spell them as escapes (`"\\udcff"`). Such a string cannot
be encoded as UTF-8, so no provider can be sent it and no database can store it. Queries are
checked before any model runs; text that has already been paid for (answers, errors) is
repaired for storage instead of being lost.
"""

from __future__ import annotations

import re

from cascade.errors import UserError

_SURROGATE = re.compile("[\ud800-\udfff]")


def first_surrogate(text: str) -> int | None:
    """The index of the first lone surrogate in `text`, or None when it is valid UTF-8 text."""
    found = _SURROGATE.search(text)
    return found.start() if found else None


def check_utf8(text: str, what: str) -> None:
    """UserError naming the first character of `text` that UTF-8 cannot encode.

    A surrogate from `surrogateescape` (U+DC80-U+DCFF) stands for one raw byte; the message
    names that byte, which is what the user typed or piped in.
    """
    index = first_surrogate(text)
    if index is None:
        return
    code = ord(text[index])
    if 0xDC80 <= code <= 0xDCFF:
        detail = f"byte 0x{code - 0xDC00:02x} at character {index}"
    else:
        detail = f"a lone surrogate U+{code:04X} at character {index}"
    raise UserError(f"{what} is not valid UTF-8 text: {detail}")


def utf8_safe(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD, so it can be encoded and stored."""
    return _SURROGATE.sub("\ufffd", text)
