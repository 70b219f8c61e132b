"""The resident pages' gettext catalogues (fr/en/ar): complete, in sync with the code and the .mo."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from publish.web import resident_i18n as i18n

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def catalogue(lang: str):
    with open(i18n.LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po", "rb") as stream:
        return read_po(stream, locale=lang)


def code_messages() -> set[str]:
    """Message ids extracted now from the code and templates, as ``make messages`` does."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as stream:
        method_map, options_map = parse_mapping_cfg(stream)
    ids = set()
    for _, _, message, _, _ in extract_from_dir(str(ROOT), method_map, options_map):
        ids.add(message[0] if isinstance(message, tuple) else message)
    return ids


def test_every_message_of_the_code_is_in_every_catalogue():
    wanted = code_messages()
    assert "L'agenda solidaire de la semaine" in wanted and len(wanted) > 100
    for lang in i18n.LANGUAGES:
        ids = {m.id[0] if isinstance(m.id, tuple) else m.id for m in catalogue(lang) if m.id}
        assert wanted <= ids, (lang, sorted(wanted - ids)[:5], "run make messages")


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_translations_are_complete_and_keep_their_placeholders(lang):
    for message in catalogue(lang):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), (lang, message.id)
        allowed = set(PLACEHOLDER.findall(" ".join(ids)))
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) <= allowed, (lang, message.id, text)
            if not isinstance(message.id, tuple):
                assert set(PLACEHOLDER.findall(text)) == allowed, (lang, message.id, text)


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_compiled_mo_matches_the_po(lang):
    def key(value):
        return tuple(value) if isinstance(value, (list, tuple)) else value

    po = {key(m.id): key(m.string) for m in catalogue(lang) if m.id}
    with open(i18n.LOCALES_DIR / lang / "LC_MESSAGES" / "messages.mo", "rb") as stream:
        mo = {key(m.id): key(m.string) for m in read_mo(stream) if m.id}
    assert mo == po, f"{lang}: messages.mo is stale, run make messages"


def test_arabic_plural_forms_follow_cldr():
    translations = i18n.translations("ar")
    forms = {n: translations.ngettext("%(num)d rendez-vous cette semaine",
                                      "%(num)d rendez-vous cette semaine", n) % {"num": n}
             for n in (0, 1, 2, 5, 11, 100)}
    assert forms == {
        0: "لا مواعيد هذا الأسبوع",
        1: "موعد واحد هذا الأسبوع",
        2: "موعدان هذا الأسبوع",
        5: "5 مواعيد هذا الأسبوع",
        11: "11 موعدًا هذا الأسبوع",
        100: "100 موعد هذا الأسبوع",
    }


def test_language_choice_query_then_cookie_then_french():
    assert i18n.pick_language("ar", "en") == "ar"
    assert i18n.pick_language(None, "en") == "en"
    assert i18n.pick_language("de", "xx") == "fr"
    assert i18n.text_direction("ar") == "rtl" and i18n.text_direction("en") == "ltr"


def test_first_of_the_month_is_an_ordinal_in_french():
    import datetime as dt

    from publish.web.resident_i18n import format_day, format_long_date

    assert format_day("fr", dt.date(2026, 12, 1)) == "mardi 1er décembre"
    assert format_long_date("fr", dt.date(2027, 5, 1)) == "samedi 1er mai 2027"
    assert format_day("fr", dt.date(2026, 12, 11)) == "vendredi 11 décembre"
    assert format_day("en", dt.date(2026, 12, 1)) == "Tuesday 1 December"
