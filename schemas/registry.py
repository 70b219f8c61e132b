"""The source registry ``data/sources.yaml``: who publishes what, where, under which licence.

The file holds a top-level ``sources:`` list. Each entry is validated by :class:`SourceSpec`; a
malformed registry raises :class:`RegistryError` naming the entry (its position and ``id``) and the
field at fault. Two entries whose http(s) addresses name the same feed (:func:`canonical_url`) are
refused with both ids and their lines in the file (one local file may feed two sources: tests and
samples do that to make duplicates on purpose).
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.http import web_url

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
REFRESH_RE = re.compile(r"^(\d+)\s*([mhd])$")
PublisherType = Literal["association", "service-municipal", "etablissement-public", "autre"]
SourceFormat = Literal["ical", "rss", "atom", "openagenda", "datainclusion", "html"]
# Besides these, ``scrapy:<spider>`` names a site-specific spider of crawlers/spiders/.
# The shortest ``refresh``: the scheduler would run a ``0m`` source every second (APScheduler
# turns a zero interval into 1 s) and the harvest would find it always due; 5 minutes is also the
# first retry delay after a failure (Settings.retry_base). The longest: one year (a longer one
# overflows the date arithmetic of ``source_is_due`` for ``99999999d``).
MIN_REFRESH_SECONDS = 5 * 60
MAX_REFRESH_SECONDS = 366 * 86400
_REFRESH_UNITS = {"m": 60, "h": 3600, "d": 86400}


# libyaml's safe loader when PyYAML has it (same documents, ~6 × faster on 500 sources).
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")


def _normal_escapes(text: str) -> str:
    """Percent-escapes upper-cased, those of unreserved characters decoded (RFC 3986 §6.2.2)."""
    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else f"%{match.group(1).upper()}"

    return _ESCAPE_RE.sub(fix, text)


def _ascii_host(host: str) -> str:
    """``host`` in its ASCII form: a name with accents IDNA-encoded (RFC 5891, ``päntin.fr`` →
    ``xn--pntin-gra.fr``), as a resolver sends it; a name that cannot be encoded is kept."""
    if host.isascii():
        return host
    try:
        import idna

        return idna.encode(host, uts46=True).decode("ascii")
    except (ImportError, UnicodeError, ValueError):  # idna.IDNAError is a UnicodeError
        try:
            return host.encode("idna").decode("ascii")  # IDNA 2003, Python's own codec
        except UnicodeError:
            return host


def canonical_url(url: str) -> str:
    """The form of an http(s) ``url`` used to tell whether two addresses name the same feed.

    Syntax-based and scheme-based normalisation of RFC 3986 §6.2.2–6.2.3, plus two steps that
    hold for the web servers that publish calendars:

    * scheme and host in lower case (the host without a final dot, IDNA-encoded when it has
      accents: ``päntin.fr`` and ``xn--pntin-gra.fr`` are one host), default port dropped
      (80 for http, 443 for https), empty path written ``/``;
    * percent-escapes in upper case, escapes of unreserved characters decoded;
    * the fragment (``#…``) dropped: it is never sent to the server;
    * a final ``/`` of a path other than ``/`` dropped (``/agenda/`` and ``/agenda`` give the
      same feed on the servers met so far).

    The query is kept as written, order of the parameters included: a server may read them in
    order. The scheme is kept (``http`` and ``https`` stay different addresses). Text that is
    not an http(s) URL (a local path of the bundled samples) comes back unchanged.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            return url
        port = parts.port
    except ValueError:  # a port out of range or a malformed IPv6 host
        return url
    host = _ascii_host(parts.hostname.rstrip("."))  # urlsplit lower-cases it
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if "@" in parts.netloc:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    path = _normal_escapes(parts.path) or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    return urlunsplit((scheme, netloc, path, _normal_escapes(parts.query), ""))


class RegistryError(ValueError):
    """The registry file cannot be used; the message names the entry and the field."""


class Publisher(BaseModel):
    """The organisation that publishes a source (schema.org ``organizer`` of its events)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    type: PublisherType
    website: str | None = None


class SourceSpec(BaseModel):
    """One registry entry.

    ``url`` is an http(s) URL, or a path relative to the registry file for bundled samples;
    ``webcal://`` and ``webcals://`` (the calendar links of many sites) are stored as
    ``https://``. ``refresh`` is a duration such as ``30m``, ``6h`` or ``1d``, from 5 minutes
    (:data:`MIN_REFRESH_SECONDS`) to 366 days.
    """

    model_config = ConfigDict(extra="forbid")
    id: str
    name: str = Field(min_length=1)
    publisher: Publisher
    format: SourceFormat
    url: str = Field(min_length=1)
    licence: str = Field(min_length=1)
    themes: list[str] = Field(default_factory=list)
    quartier: str | None = None
    refresh: str = "6h"
    status: Literal["active", "paused"] = "active"

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG_RE.match(value):
            raise ValueError("doit être un identifiant en minuscules, chiffres et tirets (slug)")
        return value

    @field_validator("format", mode="wrap")
    @classmethod
    def _spider_format(cls, value: object, handler: Any) -> str:
        """``scrapy:<spider>`` must name an existing spider (crawlers/spiders/)."""
        if isinstance(value, str) and value.startswith("scrapy:"):
            from connectors.html import spider_for
            from crawlers.run import available_spiders

            name = spider_for(value)  # ValueError on a malformed name
            known = available_spiders()
            if name not in known:
                raise ValueError(f"araignée inconnue {name!r} (connues : {', '.join(known)})")
            return value
        result: str = handler(value)
        return result

    @field_validator("refresh")
    @classmethod
    def _refresh(cls, value: str) -> str:
        problem = refresh_problem(value)
        if problem:
            raise ValueError(problem)
        return value.strip()

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        # webcal:// is a link for calendar apps, the feed is served by HTTP(S); HTTPS:// is
        # https:// (RFC 3986): connectors.http.web_url reads schemes for every caller
        value = web_url(value)
        scheme, found, _ = value.partition("://")
        if found and scheme not in ("http", "https"):
            raise ValueError("seules les adresses http(s), webcal:// ou les chemins de fichiers "
                             "sont acceptés")
        return value

    @property
    def refresh_seconds(self) -> int:
        """``refresh`` in seconds."""
        match = REFRESH_RE.match(self.refresh)
        assert match is not None
        return int(match.group(1)) * _REFRESH_UNITS[match.group(2)]

    @property
    def is_remote(self) -> bool:
        """True when ``url`` is an http(s) URL rather than a bundled file."""
        return self.url.startswith(("http://", "https://"))


def refresh_problem(value: str) -> str | None:
    """Why ``value`` cannot be a ``refresh`` duration (French), or None when it can.

    A number and a unit, ``m`` (minutes), ``h`` (hours) or ``d`` (days), from 5 minutes
    (:data:`MIN_REFRESH_SECONDS`) to 366 days (:data:`MAX_REFRESH_SECONDS`).
    """
    match = REFRESH_RE.match(str(value).strip())
    if not match:
        return "doit être une durée comme 30m, 6h ou 1d"
    seconds = int(match.group(1)) * _REFRESH_UNITS[match.group(2)]
    if seconds < MIN_REFRESH_SECONDS:
        return (f"{str(value).strip()} est trop court : au moins {MIN_REFRESH_SECONDS // 60} "
                "minutes entre deux collectes (par exemple 30m ou 6h)")
    if seconds > MAX_REFRESH_SECONDS:
        return (f"{str(value).strip()} est trop long : au plus {MAX_REFRESH_SECONDS // 86400} "
                "jours entre deux collectes")
    return None


def _french_list(values: list[str]) -> str:
    """``'a', 'b' ou 'c'`` (French list of quoted values)."""
    quoted = [repr(v) if not v.startswith("'") else v for v in values]
    if len(quoted) < 2:
        return "".join(quoted)
    return f"{', '.join(quoted[:-1])} ou {quoted[-1]}"


_LITERAL_VALUE_RE = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


# pydantic error types → French (https://docs.pydantic.dev/latest/errors/validation_errors/)
_FRENCH_ERRORS = {
    "missing": "champ obligatoire absent",
    "extra_forbidden": "champ inconnu (vérifiez l'orthographe)",
    "string_type": "du texte est attendu",
    "list_type": "une liste est attendue, par exemple [alimentation, sante]",
    "dict_type": "un objet avec des champs est attendu",
    "model_type": "un objet avec des champs est attendu",
    "string_too_short": "ne doit pas être vide",
    "literal_error": "valeur non reconnue",
}


def _french(error: Any) -> str:
    """A French message for one pydantic error (our own validators already speak French)."""
    kind = error.get("type", "")
    if kind == "literal_error":
        if tuple(error.get("loc", ()))[-1:] == ("format",):
            values = [repr(v) for v in get_args(SourceFormat)]
            values.append("'scrapy:<nom de l'araignée>'")
        else:  # pydantic's « 'a', 'b' or 'c' »: the quoted values, listed again in French
            expected = str((error.get("ctx") or {}).get("expected", ""))
            values = _LITERAL_VALUE_RE.findall(expected) or [expected]
        return f"valeur non reconnue ; valeurs possibles : {_french_list(values)}"
    if kind == "value_error":
        return str(error.get("msg", "")).removeprefix("Value error, ")
    return _FRENCH_ERRORS.get(kind, str(error.get("msg", "valeur invalide")))


# PyYAML's error (MarkedYAMLError: context/context_mark = what was open and where it started,
# problem/problem_mark = where reading failed) → (where to point, French explanation). For a
# construct left open (quote, bracket, key without ':') the reader fails far below, at the next
# line it cannot fit or the end of the file: the line to fix is where the construct started.
_YAML_CONTEXTS = (
    ("quoted scalar", "guillemets ouverts ici et jamais refermés"),
    ("flow sequence", "crochet « [ » ouvert ici et jamais refermé"),
    ("flow mapping", "accolade « { » ouverte ici et jamais refermée"),
    ("simple key", "deux-points « : » manquant après le nom du champ"),
)
_YAML_PROBLEMS = (
    ("tab", "tabulation dans l'indentation : indentez avec des espaces"),
    ("mapping values are not allowed", ("deux-points « : » inattendu : mettez entre guillemets "
                                       "une valeur qui contient « : », ou vérifiez l'indentation")),
    ("expected '-' indicator", "indentation incohérente avec les lignes au-dessus"),
    ("expected <block end>", "indentation incohérente avec les lignes au-dessus"),
    ("undefined alias", "alias « * » qui ne renvoie à aucune ancre « & »"),
    ("cannot start any token", ("caractère qui ne peut pas commencer une valeur (@, `, % …) : "
                               "mettez la valeur entre guillemets")),
)


def yaml_error_french(exc: yaml.YAMLError) -> str:
    """`` ligne L, colonne C : YAML invalide : <explication> (PyYAML : <problem>)`` for ``exc``.

    Lines and columns count from 1. The line is the one to fix: where an unclosed quote,
    bracket or key started (``context_mark``), else where reading failed (``problem_mark``).
    PyYAML's own English ``problem`` is kept in parentheses for searching the web.
    """
    context = str(getattr(exc, "context", None) or "")
    problem = str(getattr(exc, "problem", None) or "")
    mark = getattr(exc, "problem_mark", None)
    explanation = "syntaxe incorrecte"
    for needle, french in _YAML_CONTEXTS:
        if needle in context:
            explanation = french
            mark = getattr(exc, "context_mark", None) or mark
            break
    else:
        for needle, french in _YAML_PROBLEMS:
            if needle in problem:
                explanation = french
                break
    where = f" ligne {mark.line + 1}, colonne {mark.column + 1}" if mark is not None else ""
    detail = f" (PyYAML : {problem})" if problem else ""
    return f"{where} : YAML invalide : {explanation}{detail}"


def load_registry(path: Path | str) -> list[SourceSpec]:
    """Read and validate a registry file.

    Args:
        path: the YAML file.

    Returns:
        The entries in file order; a relative ``url`` is resolved against the file's folder.

    Raises:
        RegistryError: a missing file, a folder, a file that cannot be read, a file that
            is not UTF-8 text (byte offset and line named), unreadable
            YAML, no ``sources`` list, an invalid entry (message:
            ``entrée n°K (id=…) : champ 'publisher.type' : …``), a duplicate ``id`` (both lines
            named), or an
            http(s) address already given by an earlier entry (both named, with their lines).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        document = yaml.load(text, Loader=_LOADER)
    except FileNotFoundError as exc:
        raise RegistryError(f"{path} : fichier introuvable") from exc
    except IsADirectoryError as exc:
        raise RegistryError(f"{path} : c'est un dossier ; donnez le fichier du registre "
                            "(par exemple data/sources.yaml)") from exc
    except PermissionError as exc:
        raise RegistryError(f"{path} : fichier illisible (droits d'accès)") from exc
    except UnicodeDecodeError as exc:
        raise RegistryError(_not_utf8(path, exc)) from exc
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}{yaml_error_french(exc)}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("sources"), list):
        raise RegistryError(f"{path} : une liste 'sources:' est attendue au premier niveau")
    specs: list[SourceSpec] = []
    seen: dict[str, int] = {}  # id → position
    addresses: dict[str, tuple[int, str]] = {}  # canonical address → (position, id)
    for position, entry in enumerate(document["sources"], start=1):
        ident = entry.get("id") if isinstance(entry, dict) else None
        label = f"{path} : entrée n°{position} (id={ident!r})"
        if not isinstance(entry, dict):
            raise RegistryError(f"{label} : un objet avec des champs est attendu")
        try:
            spec = SourceSpec.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            field_name = ".".join(str(p) for p in first["loc"]) or "?"
            raise RegistryError(f"{label} : champ '{field_name}' : {_french(first)}") from exc
        if spec.id in seen:
            lines = _entry_lines(text)
            first_position = seen[spec.id]
            raise RegistryError(
                f"{path} : entrée n°{position} (id={spec.id!r}, ligne {_line(lines, position)})"
                f" : champ 'id' : identifiant déjà utilisé par l'entrée n°{first_position} "
                f"(ligne {_line(lines, first_position)}) : donnez-lui un autre identifiant")
        seen[spec.id] = position
        if not spec.is_remote:
            folder = path.parent.resolve()
            local = (folder / spec.url).resolve()
            if Path(spec.url).is_absolute() or not local.is_relative_to(folder):
                raise RegistryError(
                    f"{label} : champ 'url' : un fichier local doit être donné par un chemin "
                    "relatif qui reste dans le dossier du registre"
                )
            spec = spec.model_copy(update={"url": str(local)})
        address = canonical_url(spec.url)
        if spec.is_remote and address in addresses:
            first_position, first_id = addresses[address]
            lines = _entry_lines(text)
            raise RegistryError(
                f"{path} : entrée n°{position} (id={spec.id!r}, ligne "
                f"{_line(lines, position)}) : champ 'url' : même adresse que l'entrée "
                f"n°{first_position} (id={first_id!r}, ligne {_line(lines, first_position)}) : "
                f"{spec.url} ; "
                "une source ne s'inscrit qu'une fois : gardez une seule des deux entrées"
            )
        addresses[address] = (position, spec.id)
        specs.append(spec)
    return specs


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> str:
    """The French message for a registry whose bytes are not UTF-8 (a binary file, Latin-1…)."""
    data = exc.object if isinstance(exc.object, bytes) else b""
    line = data[:exc.start].count(b"\n") + 1
    return (f"{path} : ce n'est pas du texte UTF-8 (octet 0x{data[exc.start]:02x} illisible, "
            f"octet n°{exc.start + 1} du fichier, ligne {line}) : le registre doit être un fichier "
            "YAML enregistré en UTF-8") if data[exc.start:exc.start + 1] else (
        f"{path} : ce n'est pas du texte UTF-8 : le registre doit être un fichier YAML "
        "enregistré en UTF-8")


def _entry_lines(text: str) -> list[int]:
    """1-based first line of each entry of the ``sources:`` list (read again with marks).

    Only called to word an error: the fast load has no line numbers.
    """
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError:
        return []
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if key.value == "sources" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _line(lines: list[int], position: int) -> str:
    return str(lines[position - 1]) if 0 < position <= len(lines) else "?"
