"""The one translation function for every text meant for people.

English is the source language; a French catalogue (``pepsctl/locale/fr/LC_MESSAGES/pepsctl.mo``)
can be added without touching the commands. The locale follows ``PEPSCTL_LANG``, then the usual
``LANGUAGE``/``LC_ALL``/``LC_MESSAGES``/``LANG`` variables (standard gettext rules).
"""

from __future__ import annotations

import gettext as _gettext
import os
from pathlib import Path

_LOCALE_DIR = Path(__file__).parent / "locale"


def _load() -> _gettext.NullTranslations:
    languages = None
    if lang := os.environ.get("PEPSCTL_LANG"):
        languages = [lang]
    return _gettext.translation("pepsctl", localedir=_LOCALE_DIR, languages=languages, fallback=True)


_translations = _load()


def _(message: str) -> str:
    """Translate ``message`` into the user's language (English when no catalogue matches)."""
    return _translations.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _translations.ngettext(singular, plural, n)
