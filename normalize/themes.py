"""Theme assignment: every event gets one or more codes of ``data/vocab/themes.yaml``.

Three signals, in this order:

1. the source's own categories through its mapping file ``data/mappings/<source>.yaml``;
2. accent-insensitive keyword rules (``data/vocab/theme_rules.yaml``) on title, categories and
   description;
3. the source's default themes (registry ``themes:``), used only when 1 and 2 found nothing.

Hits marked *weak* (e.g. "conférence" → culture) count only when no strong hit was found. When
nothing at all is found the event gets ``autre``, so the list is never empty.

The vocabulary is aligned with the data.inclusion thématiques (schema v1,
https://schema.data.inclusion.beta.gouv.fr/, ``extra/thematiques.json``) through each theme's
``datainclusion`` list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from normalize.fold import fold

DATA = Path(__file__).resolve().parent.parent / "data"
VOCAB_FILE = DATA / "vocab" / "themes.yaml"
RULES_FILE = DATA / "vocab" / "theme_rules.yaml"
MAPPINGS_DIR = DATA / "mappings"
FALLBACK = "autre"


@dataclass(frozen=True)
class Theme:
    """One vocabulary entry: code, labels (fr, en, ar), data.inclusion codes, description."""

    code: str
    fr: str
    en: str
    ar: str
    datainclusion: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Rule:
    """One compiled keyword rule: ``theme`` when ``pattern`` matches ``scope`` (title|text)."""

    theme: str
    pattern: re.Pattern[str]
    scope: str
    weak: bool = False


@dataclass
class ThemeResult:
    """Assigned codes (vocabulary order) and why: ``reasons`` maps code → list of hits."""

    themes: list[str]
    reasons: dict[str, list[str]] = field(default_factory=dict)


class VocabularyError(ValueError):
    """A vocabulary, rule or mapping file refers to an unknown code or is malformed."""


@lru_cache(maxsize=4)
def load_vocabulary(path: Path = VOCAB_FILE) -> dict[str, Theme]:
    """The theme vocabulary, code → :class:`Theme`, in file order.

    Raises:
        VocabularyError: missing labels or duplicate codes.
    """
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    themes: dict[str, Theme] = {}
    for position, entry in enumerate(document.get("themes", []), start=1):
        try:
            theme = Theme(code=entry["code"], fr=entry["fr"], en=entry["en"], ar=entry["ar"],
                          datainclusion=tuple(entry.get("datainclusion") or ()),
                          description=" ".join(str(entry.get("description", "")).split()))
        except (KeyError, TypeError) as exc:
            raise VocabularyError(f"{path} : thème n°{position} : champ manquant {exc}") from exc
        if theme.code in themes:
            raise VocabularyError(f"{path} : code en double {theme.code!r}")
        themes[theme.code] = theme
    if FALLBACK not in themes:
        raise VocabularyError(f"{path} : le thème {FALLBACK!r} est obligatoire")
    return themes


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9]){pattern}(?![a-z0-9])")


@lru_cache(maxsize=4)
def load_rules(path: Path = RULES_FILE, vocab_path: Path = VOCAB_FILE) -> tuple[Rule, ...]:
    """Keyword rules compiled for folded text.

    Raises:
        VocabularyError: a rule names a theme missing from the vocabulary, or a bad regex.
    """
    vocabulary = load_vocabulary(vocab_path)
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    rules: list[Rule] = []
    for key, block in (document.get("rules") or {}).items():
        theme = block.get("theme", key)
        if theme not in vocabulary:
            raise VocabularyError(f"{path} : règle {key!r} : thème inconnu {theme!r}")
        weak = bool(block.get("weak", False))
        for scope in ("title", "text"):
            patterns = [str(p) for p in block.get(scope) or []]
            for pattern in patterns:
                try:
                    _compile(pattern)
                except re.error as exc:
                    raise VocabularyError(f"{path} : règle {key!r} : motif {pattern!r} : {exc}") \
                        from exc
            if patterns:  # one alternation per block and scope: ~30 searches per event
                joined = "|".join(f"(?:{p})" for p in patterns)
                rules.append(Rule(theme, _compile(f"(?:{joined})"), scope, weak))
    return tuple(rules)


@lru_cache(maxsize=64)
def load_mapping(name: str, folder: Path = MAPPINGS_DIR,
                 vocab_path: Path = VOCAB_FILE) -> dict[str, tuple[tuple[str, ...], bool]]:
    """The category mapping ``<folder>/<name>.yaml``: folded category → (codes, weak).

    A missing file gives an empty mapping.

    Raises:
        VocabularyError: unknown theme code in the file.
    """
    path = Path(folder) / f"{name}.yaml"
    if not path.exists():
        return {}
    vocabulary = load_vocabulary(vocab_path)
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    mapping: dict[str, tuple[tuple[str, ...], bool]] = {}
    for label, value in (document.get("categories") or {}).items():
        weak = False
        if isinstance(value, dict):
            weak = bool(value.get("weak", False))
            value = value.get("themes") or []
        codes = tuple(str(v) for v in value or [])
        unknown = [c for c in codes if c not in vocabulary]
        if unknown:
            raise VocabularyError(f"{path} : catégorie {label!r} : thème inconnu {unknown}")
        mapping[fold(str(label))] = (codes, weak)
    return mapping


def assign_themes(title: str | None, description: str | None = None,
                  categories: list[str] | None = None, mapping: str | None = None,
                  defaults: list[str] | None = None) -> ThemeResult:
    """Themes of one event.

    Args:
        title, description: plain text (any case or accents).
        categories: the source's own labels for the event.
        mapping: name of the mapping file in ``data/mappings/`` (source id or family), or None.
        defaults: the source's default theme codes (unknown codes are ignored).

    Returns:
        A :class:`ThemeResult` whose ``themes`` is never empty (``["autre"]`` at worst), in
        vocabulary order; ``reasons`` says which category, keyword or default gave each code.
    """
    vocabulary = load_vocabulary()
    strong: dict[str, list[str]] = {}
    weak: dict[str, list[str]] = {}
    categories = [c for c in (categories or []) if c and str(c).strip()]
    table = load_mapping(mapping) if mapping else {}
    for category in categories:
        hit = table.get(fold(category))
        if hit is None:
            continue
        codes, is_weak = hit
        for code in codes:
            (weak if is_weak else strong).setdefault(code, []).append(f"catégorie « {category} »")
    title_text = fold(" ".join([title or "", *categories]))
    full_text = f"{title_text}\n{fold(description)}"
    for rule in load_rules():
        haystack = title_text if rule.scope == "title" else full_text
        found = rule.pattern.search(haystack)
        if found:
            target = weak if rule.weak else strong
            target.setdefault(rule.theme, []).append(f"mot « {found.group(0)} »")
    chosen = strong or weak
    if not chosen:
        for code in defaults or []:
            if code in vocabulary:
                chosen.setdefault(code, []).append("thème par défaut de la source")
    if not chosen:
        chosen = {FALLBACK: ["aucun indice"]}
    ordered = [code for code in vocabulary if code in chosen]
    return ThemeResult(themes=ordered, reasons={code: chosen[code] for code in ordered})


def theme_labels(code: str, language: str = "fr") -> str:
    """The label of ``code`` in ``language`` (fr, en or ar); the code itself when unknown."""
    theme = load_vocabulary().get(code)
    return getattr(theme, language, code) if theme is not None else code
