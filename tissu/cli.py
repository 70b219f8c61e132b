"""The ``tissu`` command line (typer). Each command parses its options and calls one function."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from schemas.models import utcnow
from schemas.registry import RegistryError, load_registry
from schemas.store import make_engine
from tissu.settings import Settings, get_settings

app = typer.Typer(help="Tissu : agenda solidaire ouvert (collecte, publication, diffusion).",
                  no_args_is_help=True)
console = Console()
sources_app = typer.Typer(help="Registre et état des sources.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")

RegistryOpt = Annotated[Path | None, typer.Option("--registry", help="Registre des sources (YAML)")]
DbOpt = Annotated[str | None, typer.Option("--db", help="URL de la base de travail")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Dossier de publication")]


def _settings(registry: Path | None, db: str | None, out: Path | None) -> Settings:
    return get_settings(registry=registry, database_url=db, publish_dir=out)


def _do_harvest(settings: Settings) -> int:
    from tissu.pipeline import harvest_all

    try:
        specs = load_registry(settings.registry)
    except RegistryError as exc:
        console.print(f"[red]Registre refusé[/red] : {exc}")
        return 2
    engine = make_engine(settings.database_url)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Collecte", total=len([s for s in specs if s.status == "active"]))
        summaries = harvest_all(engine, specs, settings,
                                progress=lambda s: progress.update(task, advance=1,
                                                                   description=s.source_id))
    table = Table(title="Collecte par source")
    for column in ("source", "état", "fiches", "événements", "séances", "avertissements",
                   "erreurs"):
        table.add_column(column)
    colours = {"ok": "green", "unchanged": "green", "partial": "yellow", "failed": "red"}
    for s in summaries:
        table.add_row(s.source_id, f"[{colours.get(s.status, 'white')}]{s.status}[/]",
                      str(s.records), str(s.events), str(s.occurrences), str(len(s.warnings)),
                      str(len(s.errors)))
    console.print(table)
    for s in summaries:
        for error in s.errors[:5]:
            console.print(f"[red]erreur[/red] {error}")
    return 0


def _do_publish(settings: Settings) -> int:
    from publish.run import publish

    engine = make_engine(settings.database_url)
    outcome = publish(engine, settings.publish_dir, utcnow())
    console.print(f"Base publiée : {outcome.database}")
    for path in outcome.exports.values():
        console.print(f"Export : {path}")
    return 0


def _do_serve(settings: Settings, host: str, port: int) -> int:
    database = settings.publish_dir / "tissu-open.db"
    if not database.exists():
        console.print("[red]Aucune base publiée[/red] : lancez d'abord « tissu publish ».")
        return 2
    command = [
        sys.executable, "-m", "datasette", "serve", "-i", str(database),
        "--metadata", str(settings.publish_dir / "metadata.json"),
        "--static", f"exports:{settings.publish_dir / 'exports'}",
        "--host", host, "--port", str(port),
        "--setting", "default_page_size", "50",
    ]
    console.print(f"Tissu est servi sur http://{host}:{port}/  (Ctrl+C pour arrêter)")
    try:
        return subprocess.call(command, env=os.environ.copy())
    except KeyboardInterrupt:
        return 0


@app.command()
def harvest(registry: RegistryOpt = None, db: DbOpt = None, out: OutOpt = None) -> None:
    """Collecte chaque source active du registre puis normalise ses événements."""
    raise typer.Exit(_do_harvest(_settings(registry, db, out)))


@app.command()
def publish(registry: RegistryOpt = None, db: DbOpt = None, out: OutOpt = None) -> None:
    """Construit la base ouverte tissu-open.db et les exports (ICS, JSON-LD, CSV)."""
    raise typer.Exit(_do_publish(_settings(registry, db, out)))


@app.command()
def serve(registry: RegistryOpt = None, db: DbOpt = None, out: OutOpt = None,
          host: str = "127.0.0.1", port: int = 8001) -> None:
    """Sert la base publiée avec Datasette (et les exports sous /exports/)."""
    raise typer.Exit(_do_serve(_settings(registry, db, out), host, port))


@app.command()
def run(registry: RegistryOpt = None, db: DbOpt = None, out: OutOpt = None,
        host: str = "127.0.0.1", port: int = 8001) -> None:
    """Collecte, publie puis sert : tout en une commande."""
    settings = _settings(registry, db, out)
    code = _do_harvest(settings)
    if code == 0:
        code = _do_publish(settings)
    if code == 0:
        code = _do_serve(settings, host, port)
    raise typer.Exit(code)


NowOpt = Annotated[str | None, typer.Option("--now", help="Instant de référence ISO 8601 (tests)")]


def _parse_now(now: str | None) -> dt.datetime:
    if not now:
        return utcnow()
    value = dt.datetime.fromisoformat(now)
    if value.tzinfo is None:
        raise typer.BadParameter("--now doit porter un fuseau, par exemple 2026-11-29T12:00Z")
    return value.astimezone(dt.UTC)


@app.command()
def check(url: str, db: DbOpt = None, now: NowOpt = None,
          as_json: Annotated[bool, typer.Option("--json", help="Résultat en JSON")] = False
          ) -> None:
    """Vérifie un calendrier ou un flux (le « docteur ») : ce qui sera publié, et quoi corriger."""
    from connectors.doctor import diagnose, diagnosis_json

    settings = _settings(None, db, None)
    diagnosis = diagnose(url, now=_parse_now(now), settings=settings,
                         engine=make_engine(settings.database_url))
    typer.echo(diagnosis_json(diagnosis) if as_json else diagnosis.to_text())
    raise typer.Exit(0 if diagnosis.usable else 1)


if __name__ == "__main__":
    app()
