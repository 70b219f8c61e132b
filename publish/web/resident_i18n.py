"""Languages of the resident pages: gettext catalogues (Babel), one Jinja environment per language.

French is the source language (message ids are French); English and Arabic are translations in
``publish/web/locales/<lang>/LC_MESSAGES/messages.po``, compiled to ``messages.mo`` with
``make messages`` (Babel's ``pybabel compile``). Arabic is written right to left.

The language of a request comes from ``?lang=`` first, then the ``tissu_lang`` cookie, then
French. Dates and times are formatted with Babel's CLDR data (https://cldr.unicode.org/).
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache, lru_cache
from pathlib import Path

import jinja2
from babel import Locale
from babel.dates import format_date, format_time
from babel.support import NullTranslations, Translations

LANGUAGES: tuple[str, ...] = ("fr", "en", "ar")
DEFAULT_LANGUAGE = "fr"
RTL_LANGUAGES = frozenset({"ar"})
LANG_COOKIE = "tissu_lang"
LOCALES_DIR = Path(__file__).resolve().parent / "locales"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates" / "resident"
#: The name of each language written in that language, for the language switch.
LANGUAGE_NAMES = {"fr": "Français", "en": "English", "ar": "العربية"}


def pick_language(query_lang: str | None, cookie_lang: str | None) -> str:
    """The language to use: ``?lang=`` if supported, else the cookie's, else French."""
    for candidate in (query_lang, cookie_lang):
        if candidate and candidate.strip().lower() in LANGUAGES:
            return candidate.strip().lower()
    return DEFAULT_LANGUAGE


@cache
def translations(lang: str) -> NullTranslations:
    """The compiled catalogue of ``lang`` (``messages.mo``); French falls back to the msgids."""
    loaded = Translations.load(str(LOCALES_DIR), [lang], domain="messages")
    return loaded


def gettext(lang: str, message: str) -> str:
    """Translate one French ``message`` into ``lang``."""
    return translations(lang).gettext(message)


def text_direction(lang: str) -> str:
    """``rtl`` for Arabic, ``ltr`` otherwise (HTML ``dir`` attribute)."""
    return "rtl" if lang in RTL_LANGUAGES else "ltr"


@cache
def _locale(lang: str) -> Locale:
    """Babel's locale for ``lang``, parsed once (it is read on every date and time shown)."""
    return Locale.parse(lang)


def _french_first(lang: str, day: dt.date, text: str) -> str:
    """French writes the first day of a month as an ordinal: « mardi 1er décembre »."""
    if lang != "fr" or day.day != 1:
        return text
    return re.sub(r"(?<!\d)1(?= )", "1er", text, count=1)


@lru_cache(maxsize=4096)
def format_day(lang: str, day: dt.date) -> str:
    """A full day name and date in ``lang``, e.g. ``lundi 30 novembre`` (CLDR pattern)."""
    return _french_first(lang, day,
                         format_date(day, format="EEEE d MMMM", locale=_locale(lang)))


def format_long_date(lang: str, day: dt.date) -> str:
    """A full date with the year in ``lang``, e.g. ``lundi 30 novembre 2026``."""
    return _french_first(lang, day, format_date(day, format="full", locale=_locale(lang)))


def format_clock(lang: str, moment: dt.datetime) -> str:
    """The local time of ``moment`` (aware, already in Europe/Paris) in ``lang``, e.g. ``14:30``.

    CLDR's short time patterns (``HH:mm``, ``h:mm a``) read only the hour and the minute, so
    each (language, hour, minute) is formatted once.
    """
    return _clock(lang, moment.hour, moment.minute)


@lru_cache(maxsize=4096)
def _clock(lang: str, hour: int, minute: int) -> str:
    return format_time(dt.time(hour, minute), format="short", locale=_locale(lang))


@cache
def environment(lang: str, folder: str = "resident") -> jinja2.Environment:
    """A Jinja environment for the templates of ``templates/<folder>`` (``resident`` or
    ``embed``) with ``lang``'s gettext installed.

    One environment per language keeps concurrent requests in different languages apart.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR.parent / folder)),
        autoescape=jinja2.select_autoescape(["html", "xml", "svg"]),
        extensions=["jinja2.ext.i18n"],
        auto_reload=False,  # templates change with a new release, not while serving
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    return env
