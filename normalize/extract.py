"""Details read from an event's own text: publics, price, registration, accessibility, language.

Every extractor takes plain text (title and description, as normalised by normalize.text) and
returns what it is sure of; ``None`` means "the text does not say". Patterns are matched on
folded text (normalize.fold) so accents and case do not matter. Each rule is tested in
tests/test_extract.py with the real string that motivated it.

- Publics: codes of ``data/vocab/publics.yaml`` (data.inclusion ``publics`` where one fits).
- Price: ``gratuit`` True/False/None and the price as written ("6,00 € à 12,00 €").
- Registration: required True/False/None, a URL and a public phone number found next to the
  words "inscription" or "réservation".
- Accessibility: ``motor`` (wheelchair, PMR; same codes as the source-given ones), ``hearing`` (hearing loop, hard of hearing),
  ``sign-language`` (LSF), ``easy-read`` (FALC), ``visual`` (audio description, braille).
- Language: ISO 639-1 code, from an explicit mention ("en anglais") or else detected with lingua
  (https://github.com/pemistahl/lingua-py) among the languages listed in ``LANGUAGES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from normalize.fold import fold

PUBLICS_FILE = Path(__file__).resolve().parent.parent / "data" / "vocab" / "publics.yaml"


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9]){pattern}(?![a-z0-9])")


# ---------------------------------------------------------------- price
_FREE = _rx(r"(gratuit\w*|entree (libre|gratuite)|acces (libre|gratuit)|sans frais|free( entry| admission)?)")
_FREE_PARTIAL = _rx(r"gratuit\w* (pour|jusqu'a|aux|les|moins)")
_PAY_WHAT = _rx(r"(prix|participation|entree) (libre|consciente|au chapeau)|au chapeau")
_AMOUNT = r"\d+(?:[.,]\d{1,2})? ?(?:€|euros?\b|eur\b)"
_PRICE = re.compile(rf"(?:de )?{_AMOUNT}(?: ?(?:à|a|-|/|et) ?{_AMOUNT})?|(?:€|EUR) ?\d+(?:[.,]\d{{1,2}})?",
                    re.IGNORECASE)


@dataclass
class Price:
    """``gratuit``: True free, False paying, None unknown; ``price``: as written, or None."""

    gratuit: bool | None = None
    price: str | None = None


def extract_price(text: str | None) -> Price:
    """Price or free entry.

    An amount ("12 €", "De 6,00 € à 12,00 €") means paying, even when some are admitted free
    ("gratuit pour les moins de 12 ans"); "gratuit"/"entrée libre" alone means free; "prix libre"
    and "participation libre" keep ``gratuit`` unknown with that wording as the price.
    """
    if not text:
        return Price()
    amounts = [m.group(0).strip() for m in _PRICE.finditer(text)]
    amounts = [a for a in amounts if not re.fullmatch(r"(?i)(de )?0+([.,]0+)? ?(€|euros?|eur)", a)]
    folded = fold(text)
    if amounts:
        return Price(gratuit=False, price=amounts[0])
    pay_what = _PAY_WHAT.search(folded)
    if pay_what:
        return Price(gratuit=None, price=pay_what.group(0))
    if _FREE.search(folded):
        return Price(gratuit=True, price=None)
    return Price()


# ---------------------------------------------------------------- publics
# "Tarif réduit : étudiants, demandeurs d'emploi" names who pays less, not the audience.
_PRICE_CONDITION = re.compile(
    r"(tarifs? (reduits?|preferentiels?|solidaires?)|reductions?|demi-tarif|exoneres?)[^.\n]*")


@lru_cache(maxsize=2)
def load_publics(path: Path = PUBLICS_FILE) -> dict[str, dict[str, Any]]:
    """Publics vocabulary: code → {fr, en, ar, datainclusion, patterns (compiled)}."""
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    vocabulary: dict[str, dict[str, Any]] = {}
    for entry in document["publics"]:
        vocabulary[entry["code"]] = {
            "fr": entry["fr"], "en": entry["en"], "ar": entry["ar"],
            "datainclusion": entry.get("datainclusion", True),
            "patterns": [_rx(str(p)) for p in entry.get("patterns") or []],
        }
    return vocabulary


def extract_publics(text: str | None) -> list[str]:
    """Publics named in ``text`` (vocabulary order); ``[]`` when none is named.

    Lines that carry a price ("demandeurs d’emploi, -26ans : 11€") and reduced-price
    conditions are ignored: they say who pays less, not whom the event is for.
    """
    lines = [line for line in (text or "").splitlines() if not _PRICE.search(line)]
    folded = _PRICE_CONDITION.sub(" ", fold("\n".join(lines)))
    return [code for code, entry in load_publics().items()
            if any(p.search(folded) for p in entry["patterns"])]


# ---------------------------------------------------------------- registration
# "Rséervation obligatoire au 06 …" (Aquitaine RSS): the typo is real, so allow one stray letter.
_BOOKING_WORD = r"(inscri\w*|r\w{1,3}rvations?|reserve[rz]|billetterie)"
_BOOKING_NOUN = r"(inscriptions?|r\w{1,3}rvations?|billetterie)"
_REQUIRED = _rx(rf"({_BOOKING_NOUN} ((est|sont) )?(obligatoires?|indispensables?|necessaires?|requises?)|"
                r"sur (inscription|reservation)|inscription prealable|places? limitees?|"
                r"(il faut|merci de|pensez a) (vous )?(inscrire|reserver)|"
                rf"{_BOOKING_NOUN} (au|aupres|par|sur|en ligne|:))")
_NOT_REQUIRED = _rx(r"(sans (inscription|reservation)|entree libre|acces libre|"
                    r"(inscription|reservation) (non|pas) (obligatoire|necessaire)|"
                    r"no registration)")
_PHONE = re.compile(r"(?<!\d)(?:\+33 ?\(?0?\)? ?|0)[1-9](?:[ .\-]?\d{2}){4}(?!\d)")
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"')\]]+", re.IGNORECASE)


@dataclass
class Registration:
    """``required``: True/False/None; ``url`` and ``phone`` when the text gives them."""

    required: bool | None = None
    url: str | None = None
    phone: str | None = None


def _booking_sentences(text: str) -> list[str]:
    booking = _rx(_BOOKING_WORD + r"|renseignements?|infos?")
    return [s for s in re.split(r"(?<=[.!?])\s+|\n", text) if booking.search(fold(s))]


def extract_registration(text: str | None) -> Registration:
    """Whether registration is needed, and how (URL or phone near the booking words).

    Phone numbers are normalised to ``01 23 45 67 89``; a URL starting with ``www.`` gets
    ``https://``.
    """
    if not text:
        return Registration()
    folded = fold(text)
    result = Registration()
    if _REQUIRED.search(_NOT_REQUIRED.sub(" ", folded)):
        result.required = True
    elif _NOT_REQUIRED.search(folded):
        result.required = False
    for sentence in _booking_sentences(text):
        if result.phone is None:
            phone = _PHONE.search(sentence)
            if phone:
                digits = re.sub(r"\D", "", phone.group(0))
                digits = "0" + digits[2:].lstrip("0") if digits.startswith("33") else digits
                result.phone = " ".join(digits[i:i + 2] for i in range(0, 10, 2))
        if result.url is None:
            url = _URL.search(sentence)
            if url:
                value = url.group(0).rstrip(".,;:")
                result.url = value if "://" in value else f"https://{value}"
    return result


# ---------------------------------------------------------------- accessibility
_ACCESS = {
    "motor": _rx(r"(fauteuils? roulants?|pmr|mobilite reduite|accessibles? aux personnes "
                    r"(handicapees|en situation de handicap)|acces handicapes?|wheelchair)"),
    "hearing": _rx(r"(boucles? (magnetiques?|a induction|auditives?)|malentendant\w*|"
                   r"sourds?|hearing loop)"),
    "sign-language": _rx(r"(lsf|langue des signes|traduit en signes|sign language)"),
    "easy-read": _rx(r"(falc|facile a lire et a comprendre|easy[- ]read)"),
    "visual": _rx(r"(audio-?descri\w+|braille|malvoyant\w*|non-?voyant\w*)"),
}


def extract_accessibility(text: str | None) -> list[str]:
    """Accessibility features mentioned: subset of motor, hearing, sign-language, easy-read,
    visual (in that order)."""
    folded = fold(text)
    return [code for code, pattern in _ACCESS.items() if pattern.search(folded)]


# ---------------------------------------------------------------- language
LANGUAGES = ("FRENCH", "ENGLISH", "ARABIC", "SPANISH", "PORTUGUESE", "GERMAN", "ITALIAN",
             "TURKISH", "ROMANIAN", "RUSSIAN", "CHINESE", "TAMIL")
_MENTION = {
    "en": r"anglais|english", "ar": r"arabe", "es": r"espagnol", "pt": r"portugais",
    "de": r"allemand", "it": r"italien", "tr": r"turc", "ro": r"roumain", "ru": r"russe",
    "zh": r"chinois|mandarin", "ta": r"tamoul",
}
_MENTION_RX = {
    code: _rx(rf"(en|in|langue) ({words})|(conference|atelier|visite|lecture|film|spectacle|"
              rf"seance) (donnee |proposee )?en ({words})")
    for code, words in _MENTION.items()
}


@lru_cache(maxsize=1)
def _detector() -> Any:
    from lingua import Language, LanguageDetectorBuilder

    languages = [getattr(Language, name) for name in LANGUAGES]
    return (LanguageDetectorBuilder.from_languages(*languages)
            .with_minimum_relative_distance(0.1).with_low_accuracy_mode().build())


def detect_language(text: str | None) -> str | None:
    """ISO 639-1 code of the event's language, or None for text too short or unclear.

    An explicit mention ("Par Walter Scheidel … En anglais.") wins over the language the text is
    written in; otherwise lingua decides among ``LANGUAGES`` (texts under three words: None).
    """
    if not text:
        return None
    folded = fold(text)
    mentioned = [code for code, rx in _MENTION_RX.items() if rx.search(folded)]
    if len(mentioned) == 1:
        return mentioned[0]
    if len(folded.split()) < 3:
        return None
    language = _detector().detect_language_of(text[:2000])
    if language is None:
        return None
    return str(language.iso_code_639_1.name).lower()


# ---------------------------------------------------------------- all together
@dataclass
class Details:
    """Everything :func:`extract_details` found."""

    publics: list[str] = field(default_factory=list)
    price: Price = field(default_factory=Price)
    registration: Registration = field(default_factory=Registration)
    accessibility: list[str] = field(default_factory=list)
    language: str | None = None


def extract_details(title: str | None, description: str | None) -> Details:
    """Run every extractor on ``title`` + ``description`` (plain text)."""
    text = "\n".join(part for part in (title, description) if part)
    return Details(
        publics=extract_publics(text),
        price=extract_price(text),
        registration=extract_registration(text),
        accessibility=extract_accessibility(text),
        language=detect_language(text),
    )
