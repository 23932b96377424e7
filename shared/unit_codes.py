"""What a unit code (`madonvi`) looks like, so that a mistyped one is caught at configuration time.

The codes are the electronic identifiers of administrative agencies: three dot-separated groups of digits
(3, 2 and 2 of them) and the level-1 code, a capital letter and two digits, e.g. `000.00.17.H55` (H55 is
Thái Nguyên province; ministries are G01…, see docs/SPEC). A code that does not match is almost always a
typo or a wrong separator (`;` instead of `,`), and the one-stop system answers such a unit with "no
dossiers" forever, so it is refused rather than polled.
"""

from __future__ import annotations

import re

UNIT_CODE = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}")
EXAMPLE = "000.00.17.H55"


def unit_code_problem(code: str) -> str | None:
    """Why `code` is not a unit code (one line, naming the code), or None when it looks like one."""
    if UNIT_CODE.fullmatch(code):
        return None
    hint = ""
    if any(separator in code for separator in ";| \t"):
        hint = "; separate units with commas"
    elif UNIT_CODE.fullmatch(code.upper()):
        hint = "; the letter is a capital"
    return f"{code!r} does not look like a unit code (like {EXAMPLE}){hint}"


def unit_list_problems(codes: list[str]) -> list[str]:
    """Every problem of a configured unit list: empty, or codes that cannot be unit codes."""
    if not codes:
        return [f"no units: name at least one unit code, comma-separated (like {EXAMPLE})"]
    problems = [problem for code in codes if (problem := unit_code_problem(code))]
    duplicates = sorted({code for code in codes if codes.count(code) > 1})
    if duplicates:
        problems.append(f"listed more than once: {', '.join(duplicates)}")
    return problems
