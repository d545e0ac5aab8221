"""Card texts in Dutch and English from standard gettext message catalogues.

Texts are written in code as English msgids wrapped in ``_()`` (a marker that
``pybabel extract`` finds); ``cards/locales/<lang>/LC_MESSAGES/cards.po`` holds
the translations. The catalogues are compiled in memory at start-up with
Babel, so a deployment needs no build step.

Numbers, dates and quantities in the parameters of a Text are formatted by
Babel for the card's language when it is rendered (Dutch: decimal comma,
12-11-2026), so rules pass values, never pre-formatted strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.numbers import format_decimal
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


@dataclass(frozen=True)
class Localized:
    """A text from data (an order template) with its own translations: language -> text."""

    texts: Mapping[str, str]

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.texts.items())))

    def get(self, language: str) -> str:
        return self.texts.get(language) or self.texts.get(SOURCE_LANGUAGE) or next(iter(self.texts.values()), "")


@dataclass(frozen=True)
class Quantity:
    """A measured value with its unit (and comparator such as '<'), formatted for the card language."""

    value: float
    unit: str = ""
    comparator: str = ""


# Date styles per card language: Dutch 12-11-2026; English 12 Nov 2026 (never the ambiguous 11/12/26).
DATE_FORMATS = {"nl": ("short", "nl_NL"), "en": ("medium", "en_GB")}


def format_number(value: float | int, language: str) -> str:
    """All digits the value has, the language's decimal sign, no grouping (1000, not 1.000)."""
    return format_decimal(value, locale=DATE_FORMATS.get(language, DATE_FORMATS["en"])[1],
                          decimal_quantization=False, group_separator=False)


def format_day(day: date, language: str) -> str:
    style, locale = DATE_FORMATS.get(language, DATE_FORMATS["en"])
    return format_date(day, style, locale=locale)


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
    def __init__(self, translations: NullTranslations, language: str = SOURCE_LANGUAGE):
        self._translations = translations
        self.language = language

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
        if isinstance(value, Localized):
            return value.get(self.language)
        if isinstance(value, Quantity):
            return f"{value.comparator}{format_number(value.value, self.language)} {value.unit}".strip()
        if isinstance(value, datetime):
            return format_day(value.date(), self.language)
        if isinstance(value, date):
            return format_day(value, self.language)
        if isinstance(value, float):
            return format_number(value, self.language)
        return value
