"""Spreadsheet-safe CSV cells: neutralise on export, unneutralise on import (standard library only).

A cell starting with ``=``, ``+``, ``-``, ``@``, TAB, CR or LF gets a leading ``'`` so that a
spreadsheet shows it as text instead of evaluating it; reading strips exactly that one quote again,
so that an exported template round-trips with zero changes.
"""

from __future__ import annotations

__all__ = ["neutralise", "unneutralise"]

_FORMULA_STARTS = frozenset("=+-@\t\r\n")


def _quoted_formula(text: str) -> bool:
    """True when ``text`` is zero or more ``'`` followed by a character a spreadsheet evaluates."""
    stripped = text.lstrip("'")
    return bool(stripped) and stripped[0] in _FORMULA_STARTS


def neutralise(text: str) -> str:
    """Make ``text`` safe for a spreadsheet cell: prefix ``'`` when it starts with ``= + - @``, TAB, CR, LF.

    Text that already starts with quotes followed by one of those characters (``'=x``) gets one
    more quote too, so that :func:`unneutralise` gives back exactly the original for every text.
    """
    return "'" + text if _quoted_formula(text) else text


def unneutralise(text: str) -> str:
    """Undo :func:`neutralise`: strip exactly one leading ``'`` when what follows is a neutralised start.

    ``"'+33612345678"`` becomes ``"+33612345678"``; ``"'abc"`` is left alone.
    """
    if text.startswith("'") and _quoted_formula(text[1:]):
        return text[1:]
    return text
