"""The ``tissu`` command line (typer). Each command parses its options and calls one function."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from tissu.settings import Settings, get_settings

if TYPE_CHECKING:
    from rich.table import Table

    from connectors.doctor import Diagnosis

# The working store (SQLAlchemy, SQLModel), the registry, rich's tables and progress bars and
# subprocess are imported when a command needs them: « tissu publish » with nothing changed
# answers before loading them (tissu/fingerprint.py).


#: Exit code of a command refused as asked (unknown source, bad argument, unreadable file):
#: the code click gives its own usage errors. 1 means « done, but something failed ».
USAGE_ERROR = 2


def utcnow() -> dt.datetime:
    """Now, aware, in UTC (schemas.models.utcnow, without importing the store's models)."""
    return dt.datetime.now(dt.UTC)


def make_engine(database_url: str):  # type: ignore[no-untyped-def]  # -> sqlalchemy Engine
    """schemas.store.make_engine, imported on first use, for every command that opens the store.

    A store that cannot be opened ends the command with one French line and exit code 2
    instead of a traceback: an address SQLAlchemy cannot read (« adresse de base de données
    illisible : … »), a database driver that is not installed, or a database that does not
    answer or refuses the connection (« base de travail injoignable : … »). The address is
    shown without its password.
    """
    from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

    from schemas.store import make_engine as make

    try:
        return make(database_url)
    except ArgumentError as exc:  # NoSuchModuleError (unknown dialect) is one too
        problem = f"adresse de base de données illisible : « {_shown_url(database_url)} »"
        if "Can't load plugin" in str(exc):
            problem += " (type de base inconnu : sqlite:///chemin ou postgresql://… attendu)"
        else:
            problem += " (attendu : sqlite:///chemin/tissu.db ou postgresql://…)"
    except ImportError as exc:
        problem = (f"adresse de base de données illisible : « {_shown_url(database_url)} » "
                   f"(pilote Python absent : {exc.name or exc})")
    except (OperationalError, DBAPIError) as exc:
        problem = (f"base de travail injoignable : « {_shown_url(database_url)} » (le serveur "
                   "ne répond pas ou refuse la connexion ; pilote : "
                   f"{_one_line(exc.orig if exc.orig is not None else exc)})")
    except OSError as exc:  # the SQLite file's folder cannot be created
        problem = (f"base de travail injoignable : « {_shown_url(database_url)} » : "
                   f"{exc.strerror or exc}")
    refuse(problem)


def refuse(problem: str, code: int = USAGE_ERROR) -> NoReturn:
    """End the command: « Impossible : <problem> » on stderr, then exit ``code``.

    ``problem`` is plain French text (not rich markup), printed on one line whatever the
    terminal's width. The code is :data:`USAGE_ERROR` (2, as click's own usage errors) when the
    command could not be carried out as asked: an unknown source or registration, an argument
    out of bounds, a file or a store that cannot be read. Nothing was changed.
    """
    errors.print(f"[red]Impossible[/red] : {_escape(problem)}", soft_wrap=True,
                 highlight=False)
    raise typer.Exit(code)


def unknown_source(source_id: str) -> NoReturn:
    """« Source inconnue : « id » » on stderr and exit :data:`USAGE_ERROR`: the one answer of
    every ``tissu sources …`` command given a source id that the working store does not hold."""
    errors.print(f"[red]Source inconnue[/red] : « {_escape(source_id)} » (« tissu sources "
                 "status » les liste toutes).", soft_wrap=True, highlight=False)
    raise typer.Exit(USAGE_ERROR)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _shown_url(database_url: str) -> str:
    """``database_url`` with its password replaced by ``***`` (text kept when unreadable)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(database_url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001  # not a URL SQLAlchemy reads: show it, shortened
        return database_url[:80]


def _one_line(error: object) -> str:
    """The driver's message on one line (psycopg's hint lines joined with « ; »)."""
    lines = [" ".join(line.split()) for line in str(error).splitlines()]
    return " ; ".join(line for line in lines if line)[:300]

app = typer.Typer(help="Tissu : agenda solidaire ouvert (collecte, publication, diffusion).",
                  no_args_is_help=True)
console = Console()
#: Refusals and errors (:func:`refuse`), apart from the results on stdout.
errors = Console(stderr=True)
sources_app = typer.Typer(help="Registre et état des sources.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")

RegistryOpt = Annotated[Path | None, typer.Option("--registry", help="Registre des sources (YAML)")]
DbOpt = Annotated[str | None, typer.Option("--db", help="URL de la base de travail")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Dossier de publication")]


def _settings(registry: Path | None, db: str | None, out: Path | None) -> Settings:
    raw_dir = None
    if db and db.startswith("sqlite:///") and not os.environ.get("TISSU_RAW_DIR"):
        # raw snapshots live beside the working store they belong to (data/tissu.db → data/raw)
        raw_dir = Path(db.removeprefix("sqlite:///")).parent / "raw"
    return get_settings(registry=registry, database_url=db, publish_dir=out, raw_dir=raw_dir)


def _do_harvest(settings: Settings, jobs: int = 1, per_host: int = 2, worker: bool = False,
                since: str | None = None, poll: float | None = None,
                force: bool = False) -> int:
    from schemas.registry import RegistryError, load_registry
    from tissu.pipeline import harvest_all, run_worker

    try:
        specs = load_registry(settings.registry)
    except RegistryError as exc:
        console.print(f"[red]Registre refusé[/red] : {_escape(str(exc))}")
        return 2
    from rich.progress import Progress

    engine = make_engine(settings.database_url)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Collecte", total=len([s for s in specs if s.status == "active"]))

        def advance(s) -> None:  # type: ignore[no-untyped-def]
            progress.update(task, advance=1, description=s.source_id)

        if worker:
            round_start = None
            if since:
                round_start = dt.datetime.fromisoformat(since)
                if round_start.tzinfo is None:
                    round_start = round_start.replace(tzinfo=dt.UTC)
            summaries = run_worker(engine, settings, specs=specs, jobs=jobs,
                                   since=round_start, poll=poll, progress=advance,
                                   force=force)
        else:
            summaries = harvest_all(engine, specs, settings, progress=advance, jobs=jobs,
                                    per_host=per_host, force=force)
    table = harvest_table(summaries)
    console.print(table)
    _print_harvest_warnings(summaries)
    for s in summaries:
        for error in s.errors[:5]:
            console.print(f"[red]erreur[/red] {error}")
    failed = [s.source_id for s in summaries if s.status == "failed"]
    if failed:
        console.print(f"[red]{len(failed)} source(s) en échec sur {len(summaries)}[/red] : "
                      f"{', '.join(failed)} (leurs derniers événements restent publiés)")
        return 1
    return 0


def _whole_number(text: str, what: str, low: int, high: int | None = None) -> int:
    """``text`` read as a whole number in [low, high]; else a French message and exit code 2.

    Replaces click's English "Invalid value" for the numbers a resident types (port, n°).
    """
    value = str(text).strip()
    if value.isascii() and value.isdigit() and int(value) >= low and (
            high is None or int(value) <= high):
        return int(value)
    bounds = f"de {low} à {high}" if high is not None else f"à partir de {low}"
    refuse(f"{what} invalide (« {value[:40]} ») : un nombre entier {bounds} est attendu.")


def _port_value(text: str) -> int:
    """The --port option: 1 to 65535 (TCP), else a French error (exit code 2)."""
    return _whole_number(text, "port", 1, 65535)


def _registration_value(text: str) -> int:
    """A registration number (n° shown by « tissu sources pending »), else a French error."""
    return _whole_number(text, "numéro d'inscription", 1)


PortOpt = Annotated[int, typer.Option(parser=_port_value, metavar="PORT",
                                      help="Port d'écoute (1 à 65535)")]
RegistrationArg = Annotated[int, typer.Argument(parser=_registration_value, metavar="NUMERO",
                                                help="Numéro de l'inscription (tissu sources "
                                                     "pending)")]


# The « état » of a source's run as a reader reads it; the machine values (JSON, database) stay.
STATUS_LABELS = {"ok": "ok", "failed": "en échec", "partial": "partielle",
                 "unchanged": "inchangée", "retired": "retirée"}


def harvest_table(summaries: list) -> Table:  # type: ignore[type-arg]
    """The « Collecte par source » table of ``tissu harvest`` (tissu.pipeline.SourceSummary).

    One row per source, except that more than :data:`UNCHANGED_LISTED` sources unchanged (HTTP
    304 or same content) without warnings or errors share one row, « … N autres sources ».
    The state is in French (:data:`STATUS_LABELS`). Readable at 80 columns (output piped): no
    side borders, short headers (« évén. » événements, « avert. » avertissements); an id fits
    on its line up to 26 characters at 80 columns and folds beyond, counts are never cut.
    """
    from rich import box
    from rich.table import Table

    table = Table(title="Collecte par source", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, collapse_padding=True)
    # at 80 columns an id of 26 characters fits on its line; on a narrower screen the id folds
    # onto a second line rather than a count being cut (« 12… » would read as a number)
    table.add_column("source", overflow="fold", ratio=1)
    table.add_column("état", no_wrap=True, min_width=9)
    for column in ("fiches", "évén.", "séances", "avert.", "erreurs"):
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    colours = {"ok": "green", "unchanged": "green", "partial": "yellow", "failed": "red",
               "retired": "yellow"}

    def state(status: str) -> str:
        return f"[{colours.get(status, 'white')}]{STATUS_LABELS.get(status, status)}[/]"

    def is_quiet(s) -> bool:
        return s.status == "unchanged" and not s.warnings and not s.errors

    quiet = [s for s in summaries if is_quiet(s)]
    grouped = len(quiet) > UNCHANGED_LISTED
    for s in summaries:
        if grouped and is_quiet(s):
            continue
        table.add_row(_escape(s.source_id), state(s.status),
                      str(s.records), str(s.events), str(s.occurrences), str(len(s.warnings)),
                      str(len(s.errors)))
    if grouped:  # one row for them: a 500-row table costs ~0.4 s to draw and says nothing
        table.add_row(f"… {len(quiet)} autres sources", state("unchanged"),
                      str(sum(s.records for s in quiet)), str(sum(s.events for s in quiet)),
                      str(sum(s.occurrences for s in quiet)), "0", "0")
    return table


HARVEST_WARNINGS_SHOWN = 5
# Beyond this many sources unchanged (HTTP 304 or same content) and without warnings or errors,
# the harvest table gives them one line instead of one each.
UNCHANGED_LISTED = 20


def _print_harvest_warnings(summaries: list) -> None:  # type: ignore[type-arg]
    """Print each source's warnings after the harvest table (French, at most 5 per source).

    ``summaries`` are tissu.pipeline.SourceSummary; their warnings are « <source> : texte ».
    A long warning folds under its own text (:func:`_print_hanging`).
    """
    for s in summaries:
        if not s.warnings:
            continue
        console.print(f"[yellow]Avertissements de {_escape(s.source_id)}[/yellow] "
                      f"({len(s.warnings)}) :")
        _print_hanging([f"  - {warning.removeprefix(f'{s.source_id} : ')}"
                        for warning in s.warnings[:HARVEST_WARNINGS_SHOWN]])
        if len(s.warnings) > HARVEST_WARNINGS_SHOWN:
            console.print(f"  … et {len(s.warnings) - HARVEST_WARNINGS_SHOWN} autres")


def port_problem(host: str, port: int, command: str = "run") -> str | None:
    """A French message when ``host:port`` cannot be listened on (already in use), else None;
    it suggests ``tissu <command> --port`` with the next port (and ``make run`` for ``run``)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                       socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            also = f" ou « make run PORT={port + 1} »" if command == "run" else ""
            return (f"le port {port} est déjà utilisé sur {host} : choisissez-en un autre, "
                    f"par exemple « tissu {command} --port {port + 1} »{also}")
    return None


def _do_publish(settings: Settings, force: bool = False) -> int:
    from tissu.fingerprint import (
        fingerprint_if_published,
        publication_is_current,
        publish_if_changed,
    )

    # computed once, with the database's own driver: an unchanged store is answered before
    # SQLAlchemy and the publishing code are imported
    fingerprint = None if force else fingerprint_if_published(settings.database_url,
                                                               settings.publish_dir)
    if fingerprint is not None and publication_is_current(settings.publish_dir, fingerprint,
                                                          utcnow()):
        console.print(f"Publication gardée telle quelle (rien n'a changé depuis la dernière "
                      f"publication) : {settings.publish_dir / 'tissu-open.db'} ; "
                      "« tissu publish --force » pour la refaire.")
        return 0
    engine = make_engine(settings.database_url)
    decision = publish_if_changed(engine, settings.publish_dir, utcnow(), force=force,
                                  fingerprint=fingerprint)
    outcome = decision.outcome
    if outcome is None:
        console.print(f"Publication gardée telle quelle ({decision.reason}) : "
                      f"{settings.publish_dir / 'tissu-open.db'} ; « tissu publish --force » "
                      "pour la refaire.")
        return 0
    console.print(f"Base publiée : {outcome.database}")
    for path in outcome.exports.values():
        console.print(f"Export : {path}")
    for error in outcome.errors:
        console.print(f"[red]erreur[/red] {error} (la version précédente reste publiée)")
    return 0


def _do_serve(settings: Settings, host: str, port: int, with_scheduler: bool = False) -> int:
    database = settings.publish_dir / "tissu-open.db"
    if not database.exists():
        console.print("[red]Aucune base publiée[/red] : lancez d'abord « tissu publish ».")
        return 2
    problem = port_problem(host, port, "run" if with_scheduler else "serve")
    if problem:
        console.print(f"[red]Impossible de servir[/red] : {problem}")
        return 2
    command = [
        sys.executable, "-m", "datasette", "serve", "-i", str(database),
        "--metadata", str(settings.publish_dir / "metadata.json"),
        "--host", host, "--port", str(port),
        "--setting", "default_page_size", "50",
    ]
    # /exports/… and /snapshots/… are served by the plugin (publish/web/exports.py: ETag, 304,
    # CORS), which finds them through TISSU_PUBLISH_DIR.
    # the plugin (registration, moderation, status pages) must use the same working store
    env = os.environ | {"TISSU_DATABASE_URL": settings.database_url,
                        "TISSU_REGISTRY": str(settings.registry),
                        "TISSU_PUBLISH_DIR": str(settings.publish_dir)}
    console.print(f"Tissu est servi sur http://{host}:{port}/  (Ctrl+C pour arrêter)")
    if with_scheduler:
        from tissu.scheduler import serve_with_scheduler

        console.print("Le planificateur collecte chaque source à son rythme et republie.")
        return serve_with_scheduler(make_engine(settings.database_url), settings, command, env)
    # SIGTERM or Ctrl+C stop Datasette's whole process group, then tissu (not subprocess.call:
    # SIGTERM ended tissu alone and left Datasette holding the port)
    from tissu.supervise import run_until_stopped

    return run_until_stopped(command, env)


@app.command()
def harvest(
    registry: RegistryOpt = None, db: DbOpt = None, out: OutOpt = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1,
                                      help="Sources collectées en même temps")] = 1,
    per_host: Annotated[int, typer.Option("--per-host", min=1,
                                          help="Au plus N à la fois par serveur")] = 2,
    worker: Annotated[bool, typer.Option(
        "--worker", help="Mode travailleur : prend une à une les sources dues dans la base "
                         "partagée ; plusieurs processus peuvent tourner ensemble")] = False,
    since: Annotated[str | None, typer.Option(
        "--since", help="Avec --worker : toute source active pas collectée depuis cet instant "
                        "ISO 8601 (UTC), due ou non")] = None,
    poll: Annotated[float | None, typer.Option(
        "--poll", help="Avec --worker : ne s'arrête pas, regarde toutes les N secondes")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Relit chaque source même inchangée et lève le garde-fou : accepte le "
                        "retrait de plus de la moitié des événements à venir d'une source")] = False,
) -> None:
    """Collecte chaque source active du registre puis normalise ses événements."""
    raise typer.Exit(_do_harvest(_settings(registry, db, out), jobs, per_host, worker,
                                 since, poll, force))


@app.command()
def publish(registry: RegistryOpt = None, db: DbOpt = None, out: OutOpt = None,
            force: Annotated[bool, typer.Option(
                "--force", help="Republie même si rien n'a changé depuis la dernière "
                                "publication")] = False) -> None:
    """Construit la base ouverte tissu-open.db et les exports (ICS, JSON-LD, CSV).

    Rien n'est refait quand la base de travail n'a pas changé depuis la dernière publication
    (de moins d'une heure, le même jour) : voir tissu/fingerprint.py.
    """
    raise typer.Exit(_do_publish(_settings(registry, db, out), force))


@app.command()
def serve(registry: RegistryOpt = None, db: DbOpt = None, out: OutOpt = None,
          host: str = "127.0.0.1", port: PortOpt = 8001) -> None:
    """Sert la base publiée avec Datasette (et les exports sous /exports/).

    Ctrl+C ou SIGTERM arrêtent Datasette (et tout ce qu'il a lancé), puis tissu : le port est
    libéré.
    """
    raise typer.Exit(_do_serve(_settings(registry, db, out), host, port))


@app.command()
def run(registry: RegistryOpt = None, db: DbOpt = None, out: OutOpt = None,
        host: str = "127.0.0.1", port: PortOpt = 8001) -> None:
    """Collecte, publie, puis sert avec Datasette et lance le planificateur, ensemble."""
    settings = _settings(registry, db, out)
    problem = port_problem(host, port)  # say it before a long harvest, not after
    if problem:
        console.print(f"[red]Impossible de servir[/red] : {problem}")
        raise typer.Exit(2)
    code = _do_harvest(settings)
    if code in (0, 1):  # 1: some sources failed; the others are still worth serving
        code = _do_publish(settings)
    if code == 0:
        code = _do_serve(settings, host, port, with_scheduler=True)
    raise typer.Exit(code)


@app.command()
def schedule(registry: RegistryOpt = None, db: DbOpt = None, out: OutOpt = None,
             list_jobs: Annotated[bool, typer.Option("--list", help="Affiche les tâches "
                                                     "enregistrées et s'arrête")] = False) -> None:
    """Planificateur : collecte chaque source à son rythme, republie après les changements.

    S'arrête proprement sur SIGTERM ou Ctrl+C (la source en cours de collecte se termine).
    """
    from schemas.registry import RegistryError, load_registry
    from tissu.scheduler import next_run_label, run_scheduler, stored_jobs

    settings = _settings(registry, db, out)
    if list_jobs:
        # the jobs come from the registry: a registry that cannot be read is said, not shown
        # as an empty list
        try:
            load_registry(settings.registry)
        except RegistryError as exc:
            console.print(f"[red]Registre refusé[/red] : {_escape(str(exc))}")
            raise typer.Exit(2) from exc
    engine = make_engine(settings.database_url)
    if list_jobs:
        from rich.table import Table

        table = Table(title="Tâches planifiées")
        for column in ("tâche", "nom", "prochaine exécution (UTC)", "déclencheur"):
            table.add_column(column)
        now = utcnow()
        for job in stored_jobs(engine):
            table.add_row(job.id, job.name, next_run_label(job, now), trigger_label(job.trigger))
        console.print(table)
        raise typer.Exit(0)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s : %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    console.print("Planificateur démarré (Ctrl+C ou SIGTERM pour l'arrêter).")
    run_scheduler(engine, settings)
    console.print("Planificateur arrêté.")
    raise typer.Exit(0)


def _duration(seconds: int) -> str:
    """« 15 min », « 1 h 30 min », « 2 j », « 45 s » for a duration in seconds."""
    parts = []
    for size, unit in ((86400, "j"), (3600, "h"), (60, "min"), (1, "s")):
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts) or "0 s"


def _every(seconds: int) -> str:
    """« toutes les 6 h », « tous les jours », « toutes les 1 h 30 min » for a period in s."""
    if seconds % 86400 == 0 and seconds:
        days = seconds // 86400
        return "tous les jours" if days == 1 else f"tous les {days} jours"
    if seconds == 3600:
        return "toutes les heures"
    if seconds == 60:
        return "toutes les minutes"
    return f"toutes les {_duration(seconds)}"


def trigger_label(trigger: object) -> str:
    """The « déclencheur » cell of ``tissu schedule --list``, in French.

    An APScheduler interval trigger: « toutes les 6 h », « tous les jours », « toutes les
    30 min », followed by « (+ jusqu'à 15 min au hasard) » when it has a jitter; a date
    trigger: « une fois, le AAAA-MM-JJ HH:MM:SS UTC »; any other trigger: its own text.
    """
    interval = getattr(trigger, "interval", None)
    if isinstance(interval, dt.timedelta):
        label = _every(int(interval.total_seconds()))
        jitter = getattr(trigger, "jitter", None)
        if jitter:
            label += f" (+ jusqu'à {_duration(int(jitter))} au hasard)"
        return label
    run_date = getattr(trigger, "run_date", None)
    if isinstance(run_date, dt.datetime):
        return f"une fois, le {run_date.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
    return str(trigger)


NowOpt = Annotated[str | None, typer.Option("--now", help="Instant de référence ISO 8601 (tests)")]


def _parse_now(now: str | None) -> dt.datetime:
    """The ``--now`` option as an aware UTC datetime (ISO 8601 with its offset); now if None.

    A text that is not an ISO 8601 instant, or one without an offset, ends the command with one
    French line and exit code :data:`USAGE_ERROR` (:func:`refuse`), not a traceback.
    """
    if not now:
        return utcnow()
    try:
        value = dt.datetime.fromisoformat(now.strip())
    except ValueError:
        refuse(f"--now illisible (« {now[:40]} ») : un instant ISO 8601 avec son fuseau est "
               "attendu, par exemple 2026-11-29T12:00Z.")
    if value.tzinfo is None:
        refuse(f"--now sans fuseau (« {now[:40]} ») : ajoutez-le, par exemple "
               "2026-11-29T12:00Z ou 2026-11-29T13:00+01:00.")
    return value.astimezone(dt.UTC)


#: ``tissu check``'s exit codes, one rule (:func:`check_exit_code`; --help and README say it).
CHECK_USABLE = 0
CHECK_TO_FIX = 1
CHECK_UNREAD = USAGE_ERROR  # 2


def check_exit_code(diagnosis: Diagnosis) -> int:
    """The exit code of ``tissu check`` for a connectors.doctor.Diagnosis.

    - :data:`CHECK_UNREAD` (2): nothing could be read (the address was refused, the download
      failed: HTTP error, connection refused, TLS failure, address not public; or the checks
      were busy). A local file that cannot be read, a bad ``--now`` and a working store that
      cannot be opened are refused with the same code before any diagnosis (:func:`refuse`).
    - :data:`CHECK_TO_FIX` (1): read, but at least one finding is shown (« Problème » or
      « À corriger », whatever its severity), or what was read is not a calendar or a feed.
    - :data:`CHECK_USABLE` (0): a calendar or feed with nothing to correct
      (« Aucun problème trouvé »).
    """
    if not diagnosis.fetched:
        return CHECK_UNREAD
    if diagnosis.problems or not diagnosis.usable:
        return CHECK_TO_FIX
    return CHECK_USABLE


def _check_engine(database_url: str, given: bool):  # type: ignore[no-untyped-def]  # -> Engine
    """The working store ``tissu check`` compares with (« déjà inscrit », doublons).

    A SQLite store named by ``--db`` (``given``) must exist: a path with a typo would otherwise
    be created empty and the comparison would find nothing, silently. Refused with one French
    line and exit code 2 (:func:`refuse`), as a store that cannot be opened (:func:`make_engine`).
    """
    if given and database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        if not path.is_file():
            refuse(f"base de travail introuvable : « {path} » (aucun fichier à cet endroit : "
                   "vérifiez --db ; sans --db, la base de travail habituelle est lue).")
    return make_engine(database_url)


def local_file(argument: str) -> Path | None:
    """The local file named by ``tissu check``'s argument, or None for a web address.

    An argument with a scheme (``https://``, ``webcal://`` …) is a web address, except
    ``file://`` (RFC 8089), read as the path it names; any other argument is a path, as the
    registry accepts for bundled samples (``data/samples/agenda.ics``).
    """
    from urllib.parse import unquote, urlsplit

    head = argument.split("?", 1)[0][:16]
    if "://" not in head:
        return Path(argument).expanduser()
    parts = urlsplit(argument)
    if parts.scheme.lower() == "file" and parts.netloc in ("", "localhost"):
        return Path(unquote(parts.path))
    return None


def read_local_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path``, at most ``max_bytes`` (the harvest's own limit).

    A file that does not exist, a folder, a named pipe or a device (reading one could wait
    for ever), a file that cannot be read (permissions) or one
    larger than ``max_bytes`` ends the command with a French line on stderr and exit code
    :data:`USAGE_ERROR` (:func:`refuse`); a missing file that looks like a web address
    (``example.org/agenda.ics``) is told to begin with https://.
    """
    from connectors.http import human_size

    shown = str(path)
    try:
        if path.is_dir():
            refuse(f"« {shown} » est un dossier : donnez le chemin d'un fichier (.ics, RSS ou "
                   "Atom) ou une adresse https://.")
        if path.exists() and not path.is_file():  # a named pipe would wait for a writer
            refuse(f"« {shown} » n'est pas un fichier ordinaire (tube ou périphérique) : "
                   "enregistrez d'abord le calendrier dans un fichier.")
        with path.open("rb") as file:
            content = file.read(max_bytes + 1)
    except FileNotFoundError:
        hint = ("une adresse web commence par https://" if "." in shown.split("/", 1)[0]
                and not path.parent.exists() else "vérifiez le chemin, ou donnez une adresse "
                "https://")
        refuse(f"fichier introuvable : « {shown} » ({hint}).")
    except PermissionError:
        refuse(f"fichier illisible : « {shown} » (droits de lecture refusés à cet utilisateur).")
    except OSError as exc:
        refuse(f"fichier illisible : « {shown} » ({exc.strerror or exc}).")
    if len(content) > max_bytes:
        refuse(f"fichier trop volumineux : « {shown} » (plus de {human_size(max_bytes)}, la "
               "limite de la collecte) : retirez-en les anciens événements.")
    return content


@app.command()
def check(url: Annotated[str, typer.Argument(
              metavar="ADRESSE", help="Adresse https:// (ou webcal://) du calendrier ou du "
                                      "flux, ou chemin d'un fichier local")],
          db: DbOpt = None, now: NowOpt = None,
          as_json: Annotated[bool, typer.Option("--json", help="Résultat en JSON")] = False
          ) -> None:
    """Vérifie un calendrier ou un flux (le « docteur ») : ce qui sera publié, et quoi corriger.

    ADRESSE est une adresse web ou un fichier local (chemin ou file://), lu comme la collecte
    le lirait.

    Code de sortie : 0 utilisable tel quel, rien à corriger ; 1 lu, mais au moins un point
    « Problème » ou « À corriger » (ou ce n'est ni un calendrier ni un flux) ; 2 rien n'a pu
    être lu (fichier introuvable ou illisible, adresse refusée, erreur HTTP, serveur
    injoignable) ou commande mal formée (--now illisible, --db introuvable ou injoignable).
    """
    from connectors.doctor import diagnose, diagnose_content, diagnosis_json

    settings = _settings(None, db, None)
    moment = _parse_now(now)
    path = local_file(url)
    # a local file is read first: one that cannot be read is said before the store is opened
    content = None if path is None else read_local_file(path, settings.max_body_bytes)
    engine = _check_engine(settings.database_url, given=db is not None)
    if path is None or content is None:
        diagnosis = diagnose(url, now=moment, settings=settings, engine=engine)
    else:
        # the absolute path, as the registry keeps a local source's url: « déjà inscrit » works
        diagnosis = diagnose_content(content, str(path.resolve()), now=moment,
                                     settings=settings, engine=engine)
    typer.echo(diagnosis_json(diagnosis) if as_json else diagnosis.to_text())
    raise typer.Exit(check_exit_code(diagnosis))


def _print_hanging(lines: list[str]) -> None:
    """Print plain-text ``lines``; an item « - … » (indented or not) folds under its own text
    (hanging indent) instead of under the dash, so a long warning stays readable at 80 columns.
    """
    import re

    from rich.table import Table
    from rich.text import Text

    for line in lines:
        item = re.match(r"^( *- )(.*)$", line)
        if item is None:
            console.print(Text(line), highlight=False)
            continue
        grid = Table.grid()
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        grid.add_row(Text(item.group(1)), Text(item.group(2)))
        console.print(grid, highlight=False)


@sources_app.command("status")
def sources_status(
    source: Annotated[str | None, typer.Argument(
        metavar="[SOURCE]", help="Une source : tout son détail, dont chaque avertissement de "
                                 "sa dernière lecture")] = None,
    registry: RegistryOpt = None, db: DbOpt = None, out: OutOpt = None) -> None:
    """Santé de chaque source : ok, à surveiller ou en panne, avec la raison en clair.

    Sur un écran étroit (moins de 140 colonnes, ou la sortie redirigée), les raisons sont
    écrites sous le tableau. « tissu sources status SOURCE » détaille une source.
    """
    from connectors.health import (
        WIDE_STATUS_TABLE,
        details_text,
        health_report,
        reason_lines,
        source_details,
        status_table,
    )

    settings = _settings(registry, db, out)
    engine = make_engine(settings.database_url)
    if source is not None:
        found = source_details(engine, source, utcnow(), settings.stale_after_days)
        if found is None:
            unknown_source(source)
        _print_hanging(details_text(*found))
        raise typer.Exit(0)
    healths = health_report(engine, utcnow(), settings.stale_after_days)
    if not healths:
        console.print("Aucune source : lancez d'abord « tissu harvest ».")
        raise typer.Exit(0)
    wide = console.width >= WIDE_STATUS_TABLE
    console.print(status_table(healths, with_reasons=wide))
    reasons = [] if wide else reason_lines(healths)
    if reasons:
        _print_hanging(["Raisons :", *(f"- {line}" for line in reasons)])
    if any(h.status != "ok" for h in healths):
        console.print("Détail d'une source (chaque avertissement de sa dernière lecture) : "
                      "« tissu sources status SOURCE ».", highlight=False)
    raise typer.Exit(0)


@sources_app.command("pending")
def sources_pending(db: DbOpt = None) -> None:
    """Inscriptions en attente de modération (la plus ancienne d'abord)."""
    from sqlmodel import Session

    from tissu.registrations import pending

    settings = _settings(None, db, None)
    with Session(make_engine(settings.database_url)) as session:
        waiting = pending(session)
        if not waiting:
            console.print("Aucune inscription en attente.")
            raise typer.Exit(0)
        typer.echo(f"{len(waiting)} inscription(s) en attente :")
        for r in waiting:
            typer.echo(f"\nn°{r.id} — reçue le {r.submitted_at:%Y-%m-%d %H:%M} UTC\n"
                       f"  organisation : {r.organisation_name} ({r.organisation_type})"
                       f"{' — ' + r.website if r.website else ''}\n"
                       f"  adresse : {r.url} ({r.format})\n"
                       f"  licence : {r.licence} ; thèmes : {r.themes} ; "
                       f"quartier : {r.quartier or '—'}\n"
                       f"  contact (privé) : {r.contact_email}")
    raise typer.Exit(0)


def _moderate(action: str, target: str, db: str | None, **kwargs: object) -> None:
    """Approve, reject, pause or resume, after checking that the target exists.

    An unknown registration number or source id, or an empty reason of refusal, is refused
    with exit code :data:`USAGE_ERROR` (2) before anything changes (:func:`refuse`,
    :func:`unknown_source`); a registration already decided exits 1.
    """
    from sqlmodel import Session

    from schemas.models import Registration, Source
    from tissu import registrations

    if action == "reject" and not str(kwargs.get("reason") or "").strip():
        refuse("indiquez la raison du refus (--reason) : elle est envoyée à l'association.")
    settings = _settings(None, db, None)
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        if action in ("approve", "reject"):
            if session.get(Registration, int(target)) is None:
                refuse(f"inscription n°{target} introuvable (« tissu sources pending » liste "
                       "celles en attente).")
        elif session.get(Source, target) is None:
            unknown_source(target)
    try:
        if action == "approve":
            decision = registrations.approve(engine, int(target), now=utcnow(), settings=settings,
                                             **kwargs)  # type: ignore[arg-type]
            assert decision.source is not None
            console.print(f"Inscription n°{target} acceptée : source « {decision.source.id} », "
                          "collecte planifiée.")
        elif action == "reject":
            decision = registrations.reject(engine, int(target), now=utcnow(), settings=settings,
                                            **kwargs)  # type: ignore[arg-type]
            console.print(f"Inscription n°{target} refusée.")
        else:
            decision = registrations.set_paused(engine, target, action == "pause", now=utcnow(),
                                                settings=settings)
            console.print(f"Source « {target} » " + ("mise en pause." if action == "pause"
                                                     else "réactivée."))
    except (registrations.ModerationError, ValueError) as exc:
        # e.g. « inscription n°3 déjà traitée (approved) »: the command was right, the state
        # forbids it
        refuse(str(exc), code=1)
    console.print("Éditeur prévenu par e-mail." if decision.mailed
                  else "SMTP non configuré ou injoignable : le message a été journalisé.")
    raise typer.Exit(0)


@sources_app.command("approve")
def sources_approve(registration: RegistrationArg, db: DbOpt = None,
                    refresh: Annotated[str, typer.Option(
                        help="Fréquence : 30m, 6h, 1d… (de 5 minutes à 366 jours)")] = "6h"
                    ) -> None:
    """Accepte une inscription : la source entre au registre et sa collecte est planifiée."""
    from schemas.registry import refresh_problem

    problem = refresh_problem(refresh)  # the registry's bounds: 5 minutes to 366 days
    if problem:
        refuse(f"fréquence {refresh!r} refusée : {problem}.")
    _moderate("approve", str(registration), db, refresh=refresh)


@sources_app.command("reject")
def sources_reject(registration: RegistrationArg,
                   reason: Annotated[str, typer.Option("--reason", help="Raison (envoyée à "
                                                       "l'association)")],
                   db: DbOpt = None) -> None:
    """Refuse une inscription, avec une raison envoyée à l'association."""
    _moderate("reject", str(registration), db, reason=reason)


@sources_app.command("pause")
def sources_pause(source: str, db: DbOpt = None) -> None:
    """Met une source en pause (plus de collecte ; ses événements restent publiés)."""
    _moderate("pause", source, db)


@sources_app.command("resume")
def sources_resume(source: str, db: DbOpt = None) -> None:
    """Réactive une source mise en pause."""
    _moderate("resume", source, db)


dedupe_app = typer.Typer(help="Doublons entre sources : lancer, relire.", no_args_is_help=True)
app.add_typer(dedupe_app, name="dedupe")


@dedupe_app.command("run")
def dedupe_run(db: DbOpt = None,
               full: Annotated[bool, typer.Option(
                   "--full", help="Tout recomparer, pas seulement ce qui a changé")] = False
               ) -> None:
    """Regroupe les événements identiques publiés par plusieurs sources."""
    from normalize.dedupe import run_deduplication

    outcome = run_deduplication(make_engine(_settings(None, db, None).database_url),
                                full=full)
    scope = ("tout recomparé" if outcome.full
             else f"{outcome.recomputed} recomparé(s), le reste inchangé")
    console.print(f"{outcome.events} événements ({scope}), {outcome.candidate_pairs} paires "
                  f"candidates, {outcome.duplicates} doublons fusionnés, "
                  f"{outcome.review_pairs} à relire")
    for warning in outcome.warnings:
        console.print(f"[red]{warning}[/red]")


@dedupe_app.command("review")
def dedupe_review(db: DbOpt = None,
                  list_only: Annotated[bool, typer.Option("--list", help="Lister sans demander")]
                  = False) -> None:
    """Relit les paires incertaines : même événement (m), différents (d), passer (p), quitter (q).

    Chaque décision est gardée et n'est plus jamais redemandée."""
    from rich.table import Table
    from sqlmodel import Session

    from normalize.dedupe import pending_reviews, record_decision

    with Session(make_engine(_settings(None, db, None).database_url)) as session:
        items = pending_reviews(session)
        console.print(f"{len(items)} paire(s) à relire")
        for item in items:
            table = Table(title=f"score {item.decision.score:.2f} — {item.decision.pair_key}")
            table.add_column("")
            table.add_column("A")
            table.add_column("B")
            a, b = item.a, item.b
            for label, name in (("source", "source_id"), ("titre", "title"),
                                ("début (UTC)", "dtstart_utc"), ("jour", "start_date"),
                                ("lieu", "location"), ("organisateur", "organizer")):
                table.add_row(label, str(getattr(a, name, "") or ""), str(getattr(b, name, "") or ""))
            console.print(table)
            if list_only:
                continue
            answer = typer.prompt("même événement ? [m]ême / [d]ifférent / [p]asser / [q]uitter",
                                  default="p").strip().lower()[:1]
            if answer == "q":
                break
            if answer in ("m", "d"):
                record_decision(session, item.decision.pair_key,
                                "same" if answer == "m" else "different", by="cli")
    console.print("Décisions prises en compte au prochain « tissu dedupe run » ou « tissu harvest ».")


places_app = typer.Typer(help="Lieux connus de Pantin (data/places.yaml).", no_args_is_help=True)
app.add_typer(places_app, name="places")


@places_app.command("check")
def places_check() -> None:
    """Liste les lieux sans adresse, position ou quartier établis par une source citée."""
    from rich.table import Table

    from normalize.places import load_places, place_gaps

    gaps = place_gaps()
    table = Table(title=f"{len(gaps)} lieu(x) sur {len(load_places())} à compléter")
    for column in ("lieu", "manque", "note"):
        table.add_column(column)
    for gap in gaps:
        table.add_row(f"{gap.name}\n({gap.id})", ", ".join(gap.missing), gap.note or "")
    console.print(table)
    console.print("Ajouter la page qui établit chaque fait dans data/places.yaml (champs source, "
                  "coordinates_source, quartier_source).")


if __name__ == "__main__":
    app()
