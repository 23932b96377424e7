"""Vietnamese text folded for search: lower case, without diacritics, đ as d.

The same folding exists twice and must agree: in Python (`fold`, applied to what the user types) and in
SQL (`folded_sql`, applied to the stored names and indexed by migration 0002). PostgreSQL's `translate`
and `lower` are immutable, so the expression can be indexed without an extension such as unaccent; the
combining marks are dropped too, in case a name arrives decomposed (NFD).
"""

from __future__ import annotations

import unicodedata

_PLAIN = "aeiouyd"
# Every precomposed Vietnamese letter with a diacritic, lower and upper case, and what it folds to.
_GROUPS = {
    "a": "àáạảãâầấậẩẫăằắặẳẵ",
    "e": "èéẹẻẽêềếệểễ",
    "i": "ìíịỉĩ",
    "o": "òóọỏõôồốộổỗơờớợởỡ",
    "u": "ùúụủũưừứựửữ",
    "y": "ỳýỵỷỹ",
    "d": "đ",
}
_FROM = "".join(letters + letters.upper() for letters in _GROUPS.values())
_TO = "".join(plain * (2 * len(letters)) for plain, letters in _GROUPS.items())
# Combining grave, acute, tilde, hook above, dot below, circumflex, breve, horn: removed (no counterpart).
_MARKS = "\u0300\u0301\u0303\u0309\u0323\u0302\u0306\u031b"


def fold(text: str) -> str:
    """'Nguyễn Văn An' -> 'nguyen van an'; spaces collapsed."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.lower().split())


def folded_sql(column: str) -> str:
    """The SQL expression (PostgreSQL) that folds `column` the way `fold` does (spaces aside)."""
    return f"lower(translate({column}, '{_FROM}{_MARKS}', '{_TO}'))"


def like_pattern(text: str) -> str:
    """`text` with LIKE's wildcards escaped (the queries use ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
