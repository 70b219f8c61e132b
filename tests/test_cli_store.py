"""Every command that opens the working store says in French when it cannot (tissu.cli.make_engine).

The trial: ``--db garbage`` and ``--db postgresql://nope@127.0.0.1:1/x`` ended in SQLAlchemy
tracebacks (ArgumentError, OperationalError).
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tissu.cli import app

COMMANDS = [
    ["harvest"],
    ["publish", "--force"],
    ["publish"],  # the fingerprint is read first, by the driver itself
    ["check", "https://example.org/agenda.ics"],
    ["sources", "status"],
    ["sources", "pending"],
    ["sources", "pause", "albi"],
    ["schedule", "--list"],
    ["dedupe", "run"],
]


@pytest.fixture
def registry(tmp_path):
    path = tmp_path / "sources.yaml"
    path.write_text("sources: []\n", encoding="utf-8")
    return path


def invoke(args: list[str], db: str, registry, tmp_path):
    extra: list[str] = []
    if args[0] in ("harvest", "publish", "schedule") or args[:2] == ["sources", "status"]:
        extra = ["--registry", str(registry), "--out", str(tmp_path / "out")]
    return CliRunner().invoke(app, [*args, "--db", db, *extra], env={"COLUMNS": "80"})


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_an_unreadable_database_address_is_one_french_line(args, registry, tmp_path):
    result = invoke(args, "garbage", registry, tmp_path)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if "garbage" in line]
    assert lines == [("Impossible : adresse de base de données illisible : « garbage » "
                      "(attendu : sqlite:///chemin/tissu.db ou postgresql://…)")]
    assert "Traceback" not in result.output and "ArgumentError" not in result.output


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_an_unreachable_database_is_one_french_line_without_its_password(args, registry,
                                                                         tmp_path):
    # port 1 of this machine: nothing listens there, the connection is refused at once
    result = invoke(args, "postgresql://nope:secret@127.0.0.1:1/x", registry, tmp_path)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    line = next(line for line in result.output.splitlines() if "injoignable" in line)
    assert line.startswith("Impossible : base de travail injoignable : "
                           "« postgresql://nope:***@127.0.0.1:1/x » (le serveur ne répond pas "
                           "ou refuse la connexion ; pilote : "), line
    assert "secret" not in result.output
    assert "Traceback" not in result.output and "OperationalError" not in result.output


@pytest.mark.parametrize(("url", "expected"), [
    ("foo://x", "adresse de base de données illisible : « foo://x » (type de base inconnu"),
    ("mysql://a@localhost/c", "« mysql://a@localhost/c » (pilote Python absent : MySQLdb)"),
])
def test_an_unknown_database_type_or_missing_driver_is_said(url, expected, registry,
                                                            tmp_path):
    result = invoke(["sources", "status"], url, registry, tmp_path)
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_a_sqlite_store_that_cannot_be_created_is_said(tmp_path, registry):
    blocker = tmp_path / "fichier"
    blocker.write_text("x")
    url = f"sqlite:///{blocker}/sous-dossier/tissu.db"  # a folder inside a file
    result = invoke(["sources", "status"], url, registry, tmp_path)
    assert result.exit_code == 2, result.output
    assert f"base de travail injoignable : « {url} »" in result.output


def test_a_working_store_still_opens(tmp_path, registry):
    result = invoke(["sources", "status"], f"sqlite:///{tmp_path / 'tissu.db'}", registry,
                    tmp_path)
    assert result.exit_code == 0, result.output
    assert "Aucune source" in result.output


@pytest.mark.parametrize(("refresh", "problem"), [
    ("0m", ("0m est trop court : au moins 5 minutes entre deux collectes (par exemple 30m ou "
           "6h)")),
    ("souvent", "doit être une durée comme 30m, 6h ou 1d"),
])
def test_approving_with_a_refresh_out_of_bounds_is_refused_before_the_store(refresh, problem,
                                                                            tmp_path):
    # the registry refuses « refresh: 0m » (every second for the scheduler); so does approval
    result = CliRunner().invoke(app, ["sources", "approve", "1", "--refresh", refresh, "--db",
                                      f"sqlite:///{tmp_path / 'tissu.db'}"])
    assert result.exit_code == 2, result.output
    assert f"Impossible : fréquence '{refresh}' refusée : {problem}." in result.output
    assert not (tmp_path / "tissu.db").exists()
