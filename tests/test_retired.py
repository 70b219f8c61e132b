"""A source retired from the registry leaves the next publication (publish/build.py Withdrawal).

Real inputs (data/samples/, provenance in data/samples/PROVENANCE.md): the FabLab Cottbus
calendar registered twice, by the association itself (canonical of each cross-source
duplicate, normalize/dedupe.py) and by a municipal aggregate; the Lisbon calendar
(issue_48_daylight_aware_repeats.ics) by a third source. Removing the association and Lisbon
from the registry (status « retired », tissu.pipeline.sync_registry) must take Lisbon's events
out of every published table and export, and leave each FabLab event published once, from
the aggregate only. A paused source's events stay published (`tissu sources pause`).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from pathlib import Path

import yaml
from sqlmodel import Session

from publish.build import public_frames, withdrawal
from publish.run import publish
from schemas.models import RETIRED
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import NOW, SAMPLES
from tissu.fingerprint import publication_is_current, remember_publication, store_fingerprint
from tissu.pipeline import harvest_all, sync_registry
from tissu.settings import Settings, get_settings

ENTRIES = {
    "fablab-cottbus": {"name": "FabLab", "format": "ical", "url": "fablab.ics",
                       "licence": "LGPL-3.0",
                       "publisher": {"name": "FabLab Cottbus e.V.", "type": "association"}},
    "agenda-ville": {"name": "Agenda de la ville", "format": "ical", "url": "fablab.ics",
                     "licence": "LGPL-3.0",
                     "publisher": {"name": "Ville", "type": "service-municipal"}},
    "lisbonne": {"name": "Lisbonne", "format": "ical", "url": "lisbon.ics",
                 "licence": "Licence Ouverte 2.0",
                 "publisher": {"name": "Association Lisbonne", "type": "association"}},
}


def _settings(tmp_path: Path, database_url: str | None = None) -> Settings:
    """The store (SQLite unless ``database_url``) and files of a test under ``tmp_path``."""
    shutil.copy(SAMPLES / "fablab_cottbus.ics", tmp_path / "fablab.ics")
    shutil.copy(SAMPLES / "issue_48_daylight_aware_repeats.ics", tmp_path / "lisbon.ics")
    return get_settings(database_url=database_url or f"sqlite:///{tmp_path / 'tissu.db'}",
                        registry=tmp_path / "sources.yaml", publish_dir=tmp_path / "publish",
                        raw_dir=tmp_path / "raw")


def _register(settings: Settings, **status: str) -> list:
    """Write the registry with the sources named (each with the status given)."""
    entries = [{"id": ident, **ENTRIES[ident], "status": value}
               for ident, value in status.items()]
    settings.registry.write_text(yaml.safe_dump({"sources": entries}), encoding="utf-8")
    return load_registry(settings.registry)


def _rows(db: Path, sql: str) -> list[tuple]:
    connection = sqlite3.connect(db)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def test_a_retired_source_leaves_the_publication_its_duplicates_stay(tmp_path: Path,
                                                                    database_url: str) -> None:
    """On SQLite (tables copied by SQLite) and PostgreSQL (read through pandas) alike."""
    settings = _settings(tmp_path, database_url)
    engine = make_engine(settings.database_url)
    specs = _register(settings, **{"fablab-cottbus": "active", "agenda-ville": "active",
                                   "lisbonne": "active"})
    harvest_all(engine, specs, settings, now=NOW)
    first = publish(engine, settings.publish_dir, NOW)
    db = first.database
    lisbon = {r[0] for r in _rows(db, "SELECT id FROM events WHERE source_id = 'lisbonne'")}
    assert lisbon == {"lisbonne--EVENT2"}  # EVENT1 ended before the horizon
    assert {r[0] for r in _rows(db, "SELECT name FROM organisations")} == {
        "FabLab Cottbus e.V.", "Ville", "Association Lisbonne"}
    # every FabLab event is published once, the association's record canonical
    before = dict(_rows(db, "SELECT e.cluster_id, e.source_id FROM events e WHERE "
                            "e.is_canonical = 1 AND e.source_id != 'lisbonne'"))
    twins = dict(_rows(db, "SELECT cluster_id, id FROM events WHERE source_id = 'agenda-ville' "
                           "AND is_canonical = 0"))
    assert len(twins) >= 10 and all(before[c] == "fablab-cottbus" for c in twins)
    shown = _rows(db, "SELECT count(*) FROM occurrences WHERE live = 1")[0][0]
    lisbon_shown = _rows(db, "SELECT count(*) FROM occurrences WHERE live = 1 AND "
                             "event_id LIKE 'lisbonne--%'")[0][0]
    assert lisbon_shown > 0

    # the association and Lisbon leave the registry; the next harvest marks them retired
    later = NOW + dt.timedelta(hours=1)
    harvest_all(engine, _register(settings, **{"agenda-ville": "active"}), settings, now=later)
    second = publish(engine, settings.publish_dir, later)
    db = second.database
    sources = dict(_rows(db, "SELECT id, status FROM sources"))
    assert sources == {"agenda-ville": "active", "fablab-cottbus": RETIRED, "lisbonne": RETIRED}
    assert _rows(db, "SELECT DISTINCT source_id FROM events") == [("agenda-ville",)]
    # their publishers, as no other source publishes as them, leave with them (the trial:
    # « Association Lisbonne » stayed in organisations, /annuaire and structures.json)
    assert {r[0] for r in _rows(db, "SELECT name FROM organisations")} == {"Ville"}
    assert _rows(db, "SELECT count(*) FROM occurrences WHERE event_id NOT LIKE "
                     "'agenda-ville--%'") == [(0,)]
    assert _rows(db, "SELECT DISTINCT source_id FROM event_sources") == [("agenda-ville",)]
    # each duplicate is published in its twin's place: canonical, its own values, its own row
    after = dict(_rows(db, "SELECT cluster_id, id FROM events WHERE is_canonical = 1"))
    assert set(after.values()) == {r[0] for r in _rows(db, "SELECT id FROM events")}
    assert set(twins.values()) <= set(after.values())
    assert _rows(db, "SELECT count(*) FROM events WHERE is_canonical = 1 AND "
                     "field_sources != '{}'") == [(0,)]
    provenance = _rows(db, "SELECT id, canonical_event_id, event_id, confidence "
                           "FROM event_sources")
    assert {(p[0], p[1], p[3]) for p in provenance} == {
        (f"{p[2]}|{p[2]}", p[2], 1.0) for p in provenance}
    assert {p[2] for p in provenance} == set(after.values())
    # as many FabLab sessions shown as before; Lisbon's are gone
    assert _rows(db, "SELECT count(*) FROM occurrences WHERE live = 1") == [
        (shown - lisbon_shown,)]
    assert _rows(db, "SELECT count(*) FROM events_fts WHERE events_fts MATCH 'lisbon*'") == [(0,)]
    # recorded as removed in the history, counted out of the run's occurrences
    removed = {r[0] for r in _rows(db, "SELECT event_id FROM changes WHERE run_id = 2 "
                                       "AND kind = 'removed'")}
    assert lisbon <= removed
    assert not removed & set(after.values())
    stored = _rows(db, "SELECT occurrences FROM publish_runs WHERE id = 2")[0][0]
    assert stored == _rows(db, "SELECT count(*) FROM occurrences")[0][0]
    # and out of every export but the change log, which says they were removed
    log = ("changes.atom", "changes.csv")
    files = [f for f in sorted((settings.publish_dir / "exports").rglob("*")) if f.is_file()]
    assert {f.name for f in files} >= {"agenda.ics", "events.csv", "occurrences.csv",
                                       "event_sources.csv", "services.json", *log}
    for found in files:
        body = found.read_text(encoding="utf-8", errors="replace")
        if found.name in log:
            assert "lisbonne--EVENT2" in body
        else:
            assert "lisbonne--" not in body and "fablab-cottbus--" not in body, found


def test_both_copies_of_a_publication_leave_out_the_same_rows(tmp_path: Path) -> None:
    """The tables copied by SQLite from the store and those read through pandas (a
    PostgreSQL store) leave out the same rows and promote the same twins."""
    settings = _settings(tmp_path)
    engine = make_engine(settings.database_url)
    harvest_all(engine, _register(settings, **{"fablab-cottbus": "active",
                                               "agenda-ville": "active"}), settings, now=NOW)
    with Session(engine) as session:  # retired, not deduplicated again since
        sync_registry(session, _register(settings, **{"agenda-ville": "active"}))
    left = withdrawal(engine)
    assert left.sources == {"fablab-cottbus"} and len(left.promoted) >= 10
    db = publish(engine, settings.publish_dir, NOW).database
    frames = public_frames(engine, only={"events", "occurrences", "event_sources"})
    for table, key in (("events", "id"), ("occurrences", "id"), ("event_sources", "id")):
        assert set(frames[table][key]) == {r[0] for r in _rows(db, f"SELECT {key} FROM {table}")}
    canonical = frames["events"].loc[frames["events"]["is_canonical"] == 1, "id"]
    assert set(canonical) == {r[0] for r in _rows(db, "SELECT id FROM events "
                                                      "WHERE is_canonical = 1")}
    assert set(left.promoted.values()) <= set(canonical)


def test_a_paused_source_stays_published(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    engine = make_engine(settings.database_url)
    harvest_all(engine, _register(settings, lisbonne="active"), settings, now=NOW)
    harvest_all(engine, _register(settings, lisbonne="paused"), settings, now=NOW)
    db = publish(engine, settings.publish_dir, NOW).database
    assert _rows(db, "SELECT id, status FROM sources") == [("lisbonne", "paused")]
    assert _rows(db, "SELECT id FROM events ORDER BY id") == [("lisbonne--EVENT2",)]


def test_retiring_a_source_changes_the_store_fingerprint(tmp_path: Path) -> None:
    """« Nothing changed, keep the publication » (tissu/fingerprint.py) must not keep the
    events of a source just retired."""
    settings = _settings(tmp_path)
    engine = make_engine(settings.database_url)
    harvest_all(engine, _register(settings, lisbonne="active", **{"agenda-ville": "active"}),
                settings, now=NOW)
    publish(engine, settings.publish_dir, NOW)
    remember_publication(settings.publish_dir, store_fingerprint(engine), NOW)
    assert publication_is_current(settings.publish_dir, store_fingerprint(engine), NOW)
    with Session(engine) as session:
        retired: list[str] = []
        sync_registry(session, _register(settings, **{"agenda-ville": "active"}), retired)
    assert retired == ["lisbonne"]
    assert not publication_is_current(settings.publish_dir, store_fingerprint(engine), NOW)
    assert json.loads((settings.publish_dir / "metadata.json").read_text("utf-8"))


def test_a_cluster_of_three_keeps_its_best_active_member(tmp_path: Path) -> None:
    """The FabLab calendar from the association, a second association and the municipal
    aggregate; the canonical association retired: the other association's record (an
    organiser's own source ranks before an aggregate, normalize.dedupe) is published, the
    aggregate's stays its duplicate; both copies of the tables agree."""
    settings = _settings(tmp_path)
    ENTRIES["relais"] = {**ENTRIES["fablab-cottbus"], "name": "Relais",
                         "publisher": {"name": "Relais numérique", "type": "association"}}
    try:
        engine = make_engine(settings.database_url)
        harvest_all(engine, _register(settings, **{"fablab-cottbus": "active", "relais": "active",
                                                   "agenda-ville": "active"}),
                    settings, now=NOW)
        with Session(engine) as session:
            sync_registry(session, _register(settings, relais="active",
                                             **{"agenda-ville": "active"}))
    finally:
        del ENTRIES["relais"]
    left = withdrawal(engine)
    assert len(left.promoted) >= 10
    assert all(new.startswith("relais--") for new in left.promoted.values())
    db = publish(engine, settings.publish_dir, NOW).database
    canonical = dict(_rows(db, "SELECT id, source_id FROM events WHERE is_canonical = 1"))
    assert set(left.promoted.values()) <= set(canonical)
    assert _rows(db, "SELECT count(*) FROM events WHERE source_id = 'agenda-ville' AND "
                     "is_canonical = 1 AND cluster_id IN (SELECT cluster_id FROM events "
                     "WHERE id IN (SELECT event_id FROM event_sources WHERE source_id = "
                     "'relais'))") == [(0,)]
    provenance = _rows(db, "SELECT id, canonical_event_id, event_id, source_id, confidence "
                           "FROM event_sources ORDER BY id")
    promoted = set(left.promoted.values())
    rows = [p for p in provenance if p[1] in promoted]
    assert {p[3] for p in rows} == {"relais", "agenda-ville"}
    assert all(ident == f"{head}|{member}" for ident, head, member, _s, _c in rows)
    assert {(head, confidence) for _i, head, member, _s, confidence in rows
            if member == head} == {(head, 1.0) for head in promoted}
    frames = public_frames(engine, only={"event_sources"})["event_sources"]
    assert sorted(zip(frames["id"], frames["canonical_event_id"], strict=True)) == [
        (p[0], p[1]) for p in provenance]
