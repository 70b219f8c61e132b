"""Publishing: run history and changes, SEQUENCE, cancelled events, snapshots, metadata."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import icalendar
import yaml

from publish.run import PublishOutcome, publish
from schemas.registry import load_registry
from schemas.store import make_engine
from tests.conftest import FIXTURES, NOW, SAMPLES, FakeServer, Route
from tissu.pipeline import harvest_all
from tissu.settings import Settings, get_settings

LISBON = (SAMPLES / "issue_48_daylight_aware_repeats.ics").read_bytes()


@dataclass
class Site:
    """A working store fed by a local server, and where it publishes."""

    server: FakeServer
    settings: Settings
    engine: object
    specs: list

    def harvest(self, now: dt.datetime) -> list:
        return harvest_all(self.engine, self.specs, self.settings, now=now)

    def publish(self, now: dt.datetime) -> PublishOutcome:
        return publish(self.engine, self.settings.publish_dir, now)


def make_site(tmp_path: Path, files: dict[str, tuple[bytes, dict]]) -> Site:
    """Serve ``files`` (name → (bytes, extra registry fields)) and register one source each."""
    server = FakeServer()
    server.thread.start()
    entries = []
    for name, (body, extra) in files.items():
        server.routes[f"/{name}"] = Route(body)
        source_id = name.rsplit(".", 1)[0].replace("_", "-").lower()
        entries.append({"id": source_id, "name": f"Agenda {source_id}",
                        "format": "rss" if name.endswith(".xml") else "ical",
                        "url": server.url(f"/{name}"), "licence": "Licence Ouverte 2.0",
                        "publisher": {"name": f"Association {source_id}", "type": "association"},
                        **extra})
    settings = get_settings(database_url=f"sqlite:///{tmp_path / 'tissu.db'}",
                            registry=tmp_path / "sources.yaml",
                            publish_dir=tmp_path / "publish", raw_dir=tmp_path / "raw")
    settings.registry.write_text(yaml.safe_dump({"sources": entries}), encoding="utf-8")
    return Site(server, settings, make_engine(settings.database_url),
                load_registry(settings.registry))


def stop(site: Site) -> None:
    site.server.httpd.shutdown()
    site.server.httpd.server_close()


def rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    connection = sqlite3.connect(db)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def vevents(path: Path) -> dict[str, list[icalendar.Event]]:
    calendar = icalendar.Calendar.from_ical(path.read_bytes())
    found: dict[str, list[icalendar.Event]] = {}
    for event in calendar.walk("VEVENT"):
        found.setdefault(str(event["UID"]), []).append(event)
    return found


def test_history_sequence_and_cancelled_events(tmp_path: Path) -> None:
    moved = (FIXTURES / "ical" / "issue_62_moved_event.ics").read_bytes()
    site = make_site(tmp_path, {"lisbon.ics": (LISBON, {"quartier": "Quatre-Chemins"}),
                                "karaoke.ics": (moved, {})})
    try:
        now = dt.datetime(2021, 11, 20, 12, tzinfo=dt.UTC)
        site.harvest(now)
        first = site.publish(now)
        assert first.counts is not None
        assert (first.counts.new, first.counts.updated, first.counts.removed) == (2, 0, 0)
        uid = "karaoke--38m812jicsrer5gorh3mlp7qhc@google.com@tissu"
        masters = [e for e in vevents(first.exports["ics"])[uid] if "RECURRENCE-ID" not in e]
        base = int(masters[0]["SEQUENCE"])  # the source's own SEQUENCE, Tissu's revision 0
        assert base == 2  # SEQUENCE:2 in the source

        # unchanged: a run with nothing new, no new snapshot the same day
        later = now + dt.timedelta(hours=1)
        site.harvest(later)
        second = site.publish(later)
        assert second.counts is not None and not second.counts.changed
        assert second.snapshot is None

        # the source retitles its series: one update, SEQUENCE moves, LAST-MODIFIED too
        site.server.routes["/karaoke.ics"] = Route(moved.replace(b"SUMMARY:Karaoke",
                                                                 b"SUMMARY:Karaok\xc3\xa9 solidaire"))
        changed_at = now + dt.timedelta(hours=2)
        site.harvest(changed_at)
        third = site.publish(changed_at)
        assert third.counts is not None
        assert (third.counts.new, third.counts.updated) == (0, 1)
        master = next(e for e in vevents(third.exports["ics"])[uid] if "RECURRENCE-ID" not in e)
        assert int(master["SEQUENCE"]) == base + 1
        assert str(master["SUMMARY"]) == "Karaoké solidaire"
        assert master.decoded("LAST-MODIFIED") == changed_at
        assert third.snapshot is not None and third.snapshot.name == "2021-11-20T140000Z"

        # the event vanishes from its source: published as CANCELLED, counted as removed
        site.server.routes["/karaoke.ics"] = Route(
            b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nEND:VCALENDAR\r\n")
        gone_at = now + dt.timedelta(hours=3)
        # forced: the deletion guard would otherwise keep a source's only future event
        harvest_all(site.engine, site.specs, site.settings, now=gone_at, force=True)
        fourth = site.publish(gone_at)
        assert fourth.counts is not None and fourth.counts.removed == 1
        master = next(e for e in vevents(fourth.exports["ics"])[uid] if "RECURRENCE-ID" not in e)
        assert str(master["STATUS"]) == "CANCELLED"
        assert int(master["SEQUENCE"]) == base + 2
        assert all(str(e["STATUS"]) == "CANCELLED" for e in vevents(fourth.exports["ics"])[uid])
        # 31 days later it has left the feeds; the Lisbon series is still there
        month = gone_at + dt.timedelta(days=31)
        fifth = site.publish(month)
        assert uid not in vevents(fifth.exports["ics"])
        assert "lisbon--EVENT2@tissu" in vevents(fifth.exports["ics"])

        runs = rows(fourth.database, "SELECT id, new, updated FROM publish_runs ORDER BY id")
        assert runs[:3] == [(1, 2, 0), (2, 0, 0), (3, 0, 1)]
        kinds = rows(fourth.database, "SELECT run_id, kind FROM changes ORDER BY id")
        assert kinds == [(1, "new"), (1, "new"), (3, "updated"), (4, "removed")]
        atom = (fourth.exports["changes_atom"]).read_text(encoding="utf-8")
        assert "Modifié : Karaoké solidaire" in atom
    finally:
        stop(site)


def test_snapshots_are_dated_immutable_and_latest_moves(tmp_path: Path) -> None:
    site = make_site(tmp_path, {"lisbon.ics": (LISBON, {})})
    try:
        site.harvest(NOW)
        first = site.publish(NOW)
        root = site.settings.publish_dir / "snapshots"
        assert first.snapshot == root / "2026-11-29"
        assert os.readlink(root / "latest") == "2026-11-29"
        copy = root / "latest" / "exports" / "agenda.ics"
        assert copy.read_bytes() == first.exports["ics"].read_bytes()
        assert not os.access(copy, os.W_OK) or os.geteuid() == 0
        assert copy.stat().st_mode & 0o222 == 0
        # next day: a new dated copy, the old one untouched
        before = (root / "2026-11-29" / "tissu-open.db").read_bytes()
        tomorrow = NOW + dt.timedelta(days=1)
        site.harvest(tomorrow)
        site.publish(tomorrow)
        assert os.readlink(root / "latest") == "2026-11-30"
        assert (root / "2026-11-29" / "tissu-open.db").read_bytes() == before
        assert sorted(p.name for p in root.iterdir()) == ["2026-11-29", "2026-11-30", "latest"]
    finally:
        stop(site)


def test_metadata_describes_every_column_and_canned_queries_run(tmp_path: Path) -> None:
    site = make_site(tmp_path, {"lisbon.ics": (LISBON, {"quartier": "Quatre-Chemins",
                                                         "themes": ["seniors-isolement"]})})
    try:
        site.harvest(NOW)
        out = site.publish(NOW)
    finally:
        stop(site)
    metadata = json.loads(out.metadata.read_text(encoding="utf-8"))
    database = metadata["databases"]["tissu-open"]
    for table, spec in database["tables"].items():
        if table == "events_fts":
            continue
        columns = {r[1] for r in rows(out.database, f'PRAGMA table_info("{table}")')}
        assert columns, table
        assert set(spec["columns"]) == columns, table
        assert all(spec["columns"].values()), table
        assert spec["license"] == "Licence Ouverte 2.0 (Etalab)"
    assert {"events", "occurrences", "sources", "organisations", "themes", "publish_runs",
            "changes", "upcoming"} <= set(database["tables"])
    assert {q["title"] for q in database["queries"].values()} >= {
        "Cette semaine", "Cette semaine, par quartier", "Gratuit", "Pour les seniors",
        "Nouveautés de la semaine"}
    # canned queries use SQLite's clock: run them with "now" pinned to the publish time
    connection = sqlite3.connect(out.database)
    try:
        results = {}
        for name, query in database["queries"].items():
            sql = query["sql"].replace("'now'", f"'{NOW:%Y-%m-%d %H:%M:%S}'")
            results[name] = connection.execute(sql).fetchall()
    finally:
        connection.close()
    # Lisbon's weekly meeting on Monday 30 Nov 2026, the only one this week
    assert results["par_quartier"] == [("Quatre-Chemins", 1, 1, "2026-11-30T12:30:00+01:00")]
    assert [r[2] for r in results["cette_semaine"]] == ["MDS-t"]
    assert [r[2] for r in results["seniors"]][:1] == ["MDS-t"]
    indexes = {r[0] for r in rows(out.database, "SELECT name FROM sqlite_master "
                                                "WHERE type = 'index'")}
    assert {"idx_occurrences_start_utc_end_utc_live_quartier_event_id_start_local", "idx_events_quartier",
            "idx_events_updated_at_id"} <= indexes


def test_a_failing_export_group_keeps_the_others_and_its_previous_files(tmp_path: Path,
                                                                        monkeypatch) -> None:
    site = make_site(tmp_path, {"lisbon.ics": (LISBON, {})})
    try:
        site.harvest(NOW)
        first = site.publish(NOW)
        before = first.exports["jsonld"].read_bytes()

        def broken(*args: object) -> None:
            raise OSError("disque plein")

        monkeypatch.setattr("publish.exports.write_jsonld", broken)
        later = NOW + dt.timedelta(days=8)  # the first Monday meeting has passed
        second = site.publish(later)
    finally:
        stop(site)
    assert second.errors == ["exports documents : OSError('disque plein')"]
    assert first.exports["jsonld"].read_bytes() == before
    # the CSV group still ran: publish_runs.csv lists both runs
    runs = (second.exports["csv"].parent / "publish_runs.csv").read_text(encoding="utf-8-sig")
    assert len(runs.strip().splitlines()) == 3
    assert "exports.ics" in second.timings and "exports.csv+datapackage" in second.timings


def test_a_failing_history_leaves_the_previous_database_whole(tmp_path: Path,
                                                              monkeypatch) -> None:
    """The history is recorded in a thread while SQLite writes the big tables: when it fails,
    the half-written file goes and the published database stays the previous one."""
    site = make_site(tmp_path, {"lisbon.ics": (LISBON, {})})
    try:
        site.harvest(NOW)
        first = site.publish(NOW)
        before = first.database.read_bytes()

        def broken(*args: object, **kwargs: object) -> None:
            raise OSError("base de travail en lecture seule")

        monkeypatch.setattr("publish.run.record_run", broken)
        try:
            site.publish(NOW + dt.timedelta(days=1))
        except OSError as exc:
            assert "lecture seule" in str(exc)
        else:
            raise AssertionError("the publish should have failed")
    finally:
        stop(site)
    assert first.database.read_bytes() == before
    assert [p.name for p in first.database.parent.glob(".tissu-open-*")] == []
    runs = rows(first.database, "SELECT id, events FROM publish_runs")
    assert len(runs) == 1 and runs[0][1] > 0


def test_history_rows_are_stored_like_sqlalchemy_stores_them(tmp_path: Path) -> None:
    """PublishedEvent and PublishChange rows written by one driver executemany read back
    through the models (aware UTC datetimes), one change per new event."""
    from sqlmodel import Session, select

    from schemas.models import PublishChange, PublishedEvent

    site = make_site(tmp_path, {"lisbon.ics": (LISBON, {})})
    try:
        site.harvest(NOW)
        out = site.publish(NOW)
    finally:
        stop(site)
    with Session(site.engine) as session:  # type: ignore[arg-type]
        published = session.exec(select(PublishedEvent)).all()
        changes = session.exec(select(PublishChange)).all()
    assert out.counts is not None and out.counts.new == len(published) > 0
    assert {p.first_published_at for p in published} == {NOW}
    assert {p.last_run_id for p in published} == {out.counts.run_id}
    assert sorted(c.event_id for c in changes) == sorted(p.event_id for p in published)
    assert {(c.kind, c.changed_at) for c in changes} == {("new", NOW)}
