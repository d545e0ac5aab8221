"""Card texts in Dutch and English from standard gettext message catalogues.

Texts are written in code as English msgids wrapped in ``_()`` (a marker that
``pybabel extract`` finds); ``cards/locales/<lang>/LC_MESSAGES/cards.po`` holds
the translations. The catalogues are compiled in memory at start-up with
Babel, so a deployment needs no build step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "cards"
LANGUAGES = ("nl", "en")
SOURCE_LANGUAGE = "en"


def _(msgid: str) -> str:
    """Marks a text for translation; translation happens when the card is rendered."""
    return msgid


@dataclass(frozen=True)
class Text:
    """A translatable text with parameters, filled in at render time.

    Parameters may themselves be Texts (translated too) or tuples of them
    (joined with commas).
    """

    msgid: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:  # params is a dict; identity by msgid is enough
        return hash(self.msgid)


def load_translations() -> dict[str, NullTranslations]:
    """One gettext Translations per supported language."""
    translations: dict[str, NullTranslations] = {}
    for language in LANGUAGES:
        po_file = LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
        if not po_file.exists():
            translations[language] = NullTranslations()
            continue
        with po_file.open("rb") as fp:
            catalog = read_po(fp, locale=language, domain=DOMAIN)
        buffer = BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        translations[language] = Translations(fp=buffer, domain=DOMAIN)
    return translations


class Translator:
    def __init__(self, translations: NullTranslations):
        self._translations = translations

    def __call__(self, text: Text | str) -> str:
        if isinstance(text, str):
            return self._translations.gettext(text) if text else text
        params = {key: self._param(value) for key, value in text.params.items()}
        # Always %-format, so a literal '%%' becomes '%' with or without parameters.
        return self._translations.gettext(text.msgid) % params

    def _param(self, value: Any) -> Any:
        if isinstance(value, Text):
            return self(value)
        if isinstance(value, tuple):
            return ", ".join(str(self._param(v)) for v in value)
        return value
