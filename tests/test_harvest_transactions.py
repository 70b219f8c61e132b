"""How many transactions one source's harvest costs (each commit writes the WAL and costs
SQLAlchemy's bookkeeping: ~2 ms, 1–2 s of a 500-source harvest when there were six)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest
import yaml
from sqlalchemy import event

import tissu.pipeline
from bench.generator import generate
from bench.server import CorpusServer
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import NOW


@pytest.mark.parametrize("processes", [0, 2])
def test_a_new_source_is_stored_in_two_transactions_and_an_unchanged_one_in_one(
        tmp_settings, tmp_path, monkeypatch, processes):
    if not tmp_settings.database_url.startswith("sqlite"):
        pytest.skip("counts the commits of one SQLite store")
    corpus = generate(sources=4, events_per_source=12, seed=3, formats=("ical", "rss"), now=NOW)
    registry = tmp_path / "sources.yaml"
    settings = replace(tmp_settings, database_url=f"sqlite:///{tmp_path / 'tissu.db'}",
                       registry=registry, raw_dir=tmp_path / "raw")
    engine = make_engine(settings.database_url)
    commits: list[str] = []
    event.listen(engine, "commit", lambda connection: commits.append(current[0]))
    current = ["outside"]
    run_source = tissu.pipeline.run_source

    def counted(engine_, source_id, *args, **kwargs):
        current[0] = source_id
        try:
            return run_source(engine_, source_id, *args, **kwargs)
        finally:
            current[0] = "outside"

    monkeypatch.setattr(tissu.pipeline, "run_source", counted)
    with CorpusServer(corpus.served()) as server:
        registry.write_text(yaml.safe_dump(corpus.registry(server.base_url)), encoding="utf-8")
        first = tissu.pipeline.harvest_all(engine, load_registry(registry), settings, now=NOW,
                                           processes=processes)
        per_source = {s.source_id: commits.count(s.source_id) for s in first}
        commits.clear()
        again = tissu.pipeline.harvest_all(engine, load_registry(registry), settings, now=NOW,
                                           processes=processes)
        unchanged = {s.source_id: commits.count(s.source_id) for s in again}
    engine.dispose()
    assert [s.status for s in first] == ["ok"] * 4
    assert sum(s.events for s in first) == 48
    # records + run row (a source fetched in the loop also commits its « running » run first);
    # then events + normalisation columns + health
    assert per_source == {s.id: 2 if processes else 3 for s in corpus.sources}
    # an unchanged source: its run row and its health together (a source fetched in the loop
    # commits its « running » run first)
    assert [s.status for s in again] == ["unchanged"] * 4
    assert unchanged == {s.id: 1 if processes else 2 for s in corpus.sources}
    # what those commits stored: every event, its health and its run
    store = sqlite3.connect(tmp_path / "tissu.db")
    try:
        assert store.execute("SELECT count(*) FROM event").fetchone()[0] == 48
        assert store.execute("SELECT count(*) FROM source WHERE health IS NULL OR "
                             "normalized_key IS NULL").fetchone()[0] == 0
        assert store.execute("SELECT count(*) FROM harvestrun WHERE finished_at IS NULL"
                             ).fetchone()[0] == 0
    finally:
        store.close()


def test_a_snapshot_of_the_source_is_not_read_again_and_keeps_what_others_wrote(
        tmp_settings, tmp_path):
    if not tmp_settings.database_url.startswith("sqlite"):
        pytest.skip("reads one SQLite store")
    from sqlmodel import Session, select

    from schemas.models import Source

    corpus = generate(sources=1, events_per_source=5, seed=4, formats=("ical",), now=NOW)
    registry = tmp_path / "sources.yaml"
    settings = replace(tmp_settings, database_url=f"sqlite:///{tmp_path / 'tissu.db'}",
                       registry=registry, raw_dir=tmp_path / "raw")
    engine = make_engine(settings.database_url)
    with CorpusServer(corpus.served()) as server:
        registry.write_text(yaml.safe_dump(corpus.registry(server.base_url)), encoding="utf-8")
        [first] = tissu.pipeline.harvest_all(engine, load_registry(registry), settings, now=NOW,
                                             processes=0)
        source_id = first.source_id
        with Session(engine) as session:
            snapshot = session.exec(select(Source).where(Source.id == source_id)).one()
            session.expunge(snapshot)
        # a moderator pauses it while the harvest runs (another connection)
        store = sqlite3.connect(tmp_path / "tissu.db")
        store.execute("UPDATE source SET status = 'paused', paused_by_moderator = 1 "
                      "WHERE id = ?", (source_id,))
        store.commit()
        statements: list[str] = []
        event.listen(engine, "before_cursor_execute",
                     lambda conn, cursor, sql, params, context, many: statements.append(sql))
        summary = tissu.pipeline.run_source(engine, source_id, settings, NOW,
                                            snapshot=snapshot)
    engine.dispose()
    assert summary.status == "unchanged"
    assert not [s for s in statements if s.lstrip().startswith("SELECT")
                and "FROM source " in s and "source.id = ?" in s]
    row = store.execute("SELECT status, paused_by_moderator, health, last_attempt_at "
                        "FROM source WHERE id = ?", (source_id,)).fetchone()
    store.close()
    assert row[:2] == ("paused", 1)  # the run wrote only its own columns
    assert row[2] is not None and row[3].startswith(NOW.strftime("%Y-%m-%d"))
