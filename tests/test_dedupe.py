"""Cross-source deduplication (normalize/dedupe.py): metrics on the labelled pairs, stable
clusters, per-field merge with provenance, and the review list."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path

from sqlmodel import Session, select

from normalize.dedupe import (
    cluster,
    cluster_id_for,
    deduplicate,
    pair_key,
    pending_reviews,
    record_decision,
    score_pair,
)
from schemas.models import DedupeDecision, Event, EventSource, Source
from schemas.store import make_engine

ROOT = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def _eval_module():
    spec = importlib.util.spec_from_file_location("dedupe_eval", ROOT / "bench" / "dedupe_eval.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_labelled_pairs_meet_precision_and_recall_targets() -> None:
    metrics = _eval_module().evaluate()
    assert metrics["pairs"] >= 300
    assert metrics["positives"] >= 150 and metrics["pairs"] - metrics["positives"] >= 150
    assert metrics["precision"] >= 0.99, metrics["errors"]
    assert metrics["recall"] >= 0.95, metrics["errors"]


def test_score_real_variants() -> None:
    start = dt.datetime(2023, 11, 28, 17, 0, tzinfo=dt.UTC)
    # oa_albi_events.json "Émergence ou occultation d’un problème politique" and a rendering
    # with accents lost, capitals and a 10 min later start, venue abbreviated.
    a = {"title": "Émergence ou occultation d’un problème politique", "start": start,
         "location": "Institut National Universitaire Champollion, Place de Verdun, 81000 Albi"}
    b = {"title": "EMERGENCE OU OCCULTATION D'UN PROBLEME POLITIQUE",
         "start": start + dt.timedelta(minutes=10), "location": "Institut Champollion, Albi"}
    assert score_pair(a, b).decision == "same"
    # Same title and time at two different Pantin venues: never merged.
    c = {"title": "Distribution alimentaire", "start": start,
         "location": "MQ des Quatre-Chemins"}
    d = {"title": "Distribution alimentaire", "start": start,
         "location": "Maison de quartier des Courtillières"}
    scored = score_pair(c, d)
    assert scored.place == 0.0 and scored.decision == "different"


def test_cluster_ids_come_from_members_not_order() -> None:
    ids = ["b--2", "a--1", "c--3"]
    edges = [("a--1", "b--2", 0.9)]
    one = cluster(ids, edges, set())
    two = cluster(list(reversed(ids)), list(reversed(edges)), set())
    assert sorted(one.values()) == sorted(two.values()) == [["a--1", "b--2"], ["c--3"]]
    assert cluster_id_for(["b--2", "a--1"]) == cluster_id_for(["a--1", "b--2"])
    # A "different" decision keeps two events apart even through a third one.
    edges = [("a--1", "b--2", 0.95), ("b--2", "c--3", 0.9)]
    groups = cluster(ids, edges, {pair_key("a--1", "c--3")})
    assert ["c--3"] in groups.values()


def _source(session: Session, ident: str, publisher: str, kind: str) -> None:
    session.add(Source(id=ident, name=ident, publisher_name=publisher, publisher_type=kind,
                       format="ical", url=f"https://example.org/{ident}.ics", licence="LO 2.0"))


def _event(ident: str, source: str, title: str, start: dt.datetime, **extra: object) -> Event:
    return Event(id=f"{source}--{ident}", source_id=source, source_uid=ident, title=title,
                 dtstart_utc=start, dtend_utc=start + dt.timedelta(hours=2), **extra)


def _store(tmp_path: Path, url: str | None = None) -> Session:
    engine = make_engine(url or f"sqlite:///{tmp_path / 'dedupe.db'}")
    session = Session(engine)
    _source(session, "secours-populaire", "Secours populaire français, comité de Pantin",
            "association")
    _source(session, "mairie-pantin", "Ville de Pantin", "service-municipal")
    _source(session, "lettre-partenaire", "Lettre d'un partenaire", "autre")
    start = dt.datetime(2026, 12, 2, 13, 0, tzinfo=dt.UTC)
    session.add(_event("sp-1", "secours-populaire", "Distribution alimentaire", start,
                       location="Maison de quartier des Quatre-Chemins",
                       organizer="Secours populaire français, comité de Pantin",
                       description="Distribution de colis.", url="https://sp.example/1",
                       first_seen_at=NOW, themes='["alimentation"]'))
    session.add(_event("m-9", "mairie-pantin", "DISTRIBUTION ALIMENTAIRE",
                       start + dt.timedelta(minutes=10), location="MQ des 4 Chemins",
                       description="Distribution de colis alimentaires aux familles inscrites. "
                       "Apporter un sac.", first_seen_at=NOW - dt.timedelta(days=3),
                       themes='["alimentation", "famille"]'))
    session.add(_event("n-4", "lettre-partenaire", "Distribution alimentaire",
                       start, location="Maison de quartier des Courtillières",
                       first_seen_at=NOW))
    session.add(_event("n-5", "lettre-partenaire", "Atelier numérique", start,
                       location="Médiathèque Elsa-Triolet", first_seen_at=NOW))
    session.commit()
    return session


def test_deduplicate_merges_with_provenance_and_is_stable(tmp_path: Path) -> None:
    session = _store(tmp_path)
    outcome = deduplicate(session, NOW)
    assert outcome.events == 4 and outcome.clusters == 3 and outcome.duplicates == 1
    own = session.get(Event, "secours-populaire--sp-1")
    municipal = session.get(Event, "mairie-pantin--m-9")
    assert own.is_canonical and not municipal.is_canonical  # publisher's own source wins
    assert own.cluster_id == municipal.cluster_id == cluster_id_for([own.id, municipal.id])
    assert own.description.startswith("Distribution de colis alimentaires aux familles")
    assert own.first_seen_at == NOW - dt.timedelta(days=3)  # earliest creation
    assert json.loads(own.themes) == ["alimentation", "famille"]
    origin = json.loads(own.field_sources)
    assert origin["description"] == municipal.id and origin["title"] == own.id
    assert origin["url"] == own.id
    rows = session.exec(select(EventSource).where(EventSource.canonical_event_id == own.id)).all()
    assert {r.event_id for r in rows} == {own.id, municipal.id}
    assert {r.source_uid for r in rows} == {"sp-1", "m-9"}
    # Another venue at the same time stays its own event.
    other = session.get(Event, "lettre-partenaire--n-4")
    assert other.is_canonical and other.cluster_id != own.cluster_id
    before = {e.id: (e.cluster_id, e.is_canonical, e.field_sources)
              for e in session.exec(select(Event))}
    deduplicate(session, NOW)
    after = {e.id: (e.cluster_id, e.is_canonical, e.field_sources)
             for e in session.exec(select(Event))}
    assert before == after
    assert len(session.exec(select(EventSource)).all()) == 4


def test_review_decisions_are_stored_and_never_asked_twice(tmp_path: Path) -> None:
    session = _store(tmp_path)
    start = dt.datetime(2026, 12, 2, 13, 0, tzinfo=dt.UTC)
    # A borderline pair: similar title, no place given by one side, 25 min apart.
    session.add(_event("r-1", "mairie-pantin", "Atelier numérique : démarches en ligne",
                       start + dt.timedelta(minutes=25)))
    session.add(_event("r-2", "lettre-partenaire", "Aide aux démarches en ligne",
                       start, location=None))
    session.commit()
    deduplicate(session, NOW)
    pending = pending_reviews(session)
    keys = [item.decision.pair_key for item in pending]
    key = pair_key("mairie-pantin--r-1", "lettre-partenaire--r-2")
    assert key in keys
    record_decision(session, key, "same", by="test", now=NOW)
    deduplicate(session, NOW)
    assert key not in [i.decision.pair_key for i in pending_reviews(session)]
    merged = {session.get(Event, "mairie-pantin--r-1").cluster_id,
              session.get(Event, "lettre-partenaire--r-2").cluster_id}
    assert len(merged) == 1
    decision = session.get(DedupeDecision, key)
    assert decision.decision == "same" and decision.decided_by == "test"


def test_cli_dedupe_review_records_answers(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tissu.cli import app

    session = _store(tmp_path)
    start = dt.datetime(2026, 12, 2, 13, 0, tzinfo=dt.UTC)
    session.add(_event("r-1", "mairie-pantin", "Atelier numérique : démarches en ligne",
                       start + dt.timedelta(minutes=25)))
    session.add(_event("r-2", "lettre-partenaire", "Aide aux démarches en ligne", start))
    session.commit()
    deduplicate(session, NOW)
    pending = len(pending_reviews(session))
    assert pending >= 1
    db = f"sqlite:///{tmp_path / 'dedupe.db'}"
    result = CliRunner().invoke(app, ["dedupe", "review", "--db", db], input="d\n" * pending)
    assert result.exit_code == 0, result.output
    session.expire_all()
    assert pending_reviews(session) == []
    assert all(d.decision == "different" for d in session.exec(select(DedupeDecision)))
    listed = CliRunner().invoke(app, ["dedupe", "review", "--db", db, "--list"])
    assert "0 paire(s) à relire" in listed.output


def test_harvest_twice_same_calendar_from_two_sources_gives_same_clusters(tmp_path: Path) -> None:
    """The FabLab Cottbus calendar (real sample) registered twice — by the association itself
    and by a municipal aggregate — is published once per event, with the association's record
    canonical; a second harvest gives the same clusters, ids and provenance."""
    import shutil

    from schemas.registry import load_registry
    from tissu.pipeline import harvest_all
    from tissu.settings import get_settings

    shutil.copy(ROOT / "data" / "samples" / "fablab_cottbus.ics", tmp_path / "fablab.ics")
    (tmp_path / "sources.yaml").write_text(
        "sources:\n"
        "  - id: fablab-cottbus\n    name: FabLab\n"
        "    publisher: {name: FabLab Cottbus e.V., type: association}\n"
        "    format: ical\n    url: fablab.ics\n    licence: LGPL-3.0\n"
        "  - id: agenda-ville\n    name: Agenda de la ville\n"
        "    publisher: {name: Ville, type: service-municipal}\n"
        "    format: ical\n    url: fablab.ics\n    licence: LGPL-3.0\n", encoding="utf-8")
    settings = get_settings(database_url=f"sqlite:///{tmp_path / 't.db'}",
                            registry=tmp_path / "sources.yaml", publish_dir=tmp_path / "pub",
                            raw_dir=tmp_path / "raw")
    engine = make_engine(settings.database_url)
    specs = load_registry(settings.registry)

    def snapshot() -> tuple[dict[str, tuple[str | None, bool]], set[str]]:
        with Session(engine) as session:
            events = {e.id: (e.cluster_id, e.is_canonical) for e in session.exec(select(Event))}
            provenance = {r.id for r in session.exec(select(EventSource))}
        return events, provenance

    harvest_all(engine, specs, settings, now=NOW)
    first = snapshot()
    harvest_all(engine, specs, settings, now=NOW)
    assert snapshot() == first
    events, provenance = first
    by_cluster: dict[str | None, list[str]] = {}
    for event_id, (cid, _canonical) in events.items():
        by_cluster.setdefault(cid, []).append(event_id)
    pairs = [sorted(m) for m in by_cluster.values() if len(m) == 2]
    assert len(pairs) >= len(events) // 2 - 2  # (almost) every event found its twin
    for members in pairs:
        canonical = [m for m in members if events[m][1]]
        assert len(canonical) == 1 and canonical[0].startswith("fablab-cottbus--")
    assert len(provenance) == len(events)


# --- the kinds of false merges the synthetic benchmark (bench/generator.py, W5) exposed -----
PANTIN_MQ = "Maison de quartier des Courtillières, 2 avenue des Courtillières, 93500 Pantin"


def _at(hour: int, minute: int, minutes: int = 90) -> dict[str, dt.datetime]:
    start = dt.datetime(2027, 6, 7, hour, minute, tzinfo=dt.UTC)
    return {"start": start, "end": start + dt.timedelta(minutes=minutes)}


def test_other_audience_or_activity_in_the_same_room_is_never_merged() -> None:
    # Two rooms' programmes at one venue, a quarter of an hour apart (W5 false merges).
    budget_young = {"title": "Point conseil budget pour les jeunes", "location": PANTIN_MQ,
                    **_at(12, 0)}
    budget_women = {"title": "Point conseil budget pour les femmes", "location": PANTIN_MQ,
                    **_at(12, 15)}
    assert score_pair(budget_young, budget_women).decision == "different"
    cooking = {"title": "Atelier cuisine pour les nouveaux arrivants",
               "location": "Espace Cocteau, 4 rue Lapérouse, 93500 Pantin", **_at(13, 0)}
    writing = {"title": "Atelier d'écriture pour les nouveaux arrivants",
               "location": "Espace Cocteau, 4 rue Lapérouse, 93500 Pantin", **_at(12, 45, 60)}
    assert score_pair(cooking, writing).decision == "different"
    # Same words but at different hours with other ends: another slot, for a human to say.
    housing = {"title": "Permanence logement", "location": PANTIN_MQ, **_at(7, 15, 60)}
    housing_all = {"title": "Permanence logement pour tous", "location": PANTIN_MQ,
                   **_at(7, 45, 120)}
    assert score_pair(housing, housing_all).decision == "review"
    # Two rooms at one address: same title, same time, other venue names.
    brel = {"title": "Goûter des seniors en famille", **_at(13, 0),
            "location": "Salle Jacques-Brel, 42 avenue Édouard-Vaillant, 93500 Pantin"}
    mq = {"title": "Goûter des seniors en famille", **_at(13, 0),
          "location": "Maison de quartier des Quatre-Chemins, 42 avenue Édouard-Vaillant, "
                      "93500 Pantin"}
    assert score_pair(brel, mq).decision == "review"
    # Two maisons de quartier, one of them abbreviated and not in data/places.yaml's spelling.
    petit = {"title": "Accueil de jour pour tous !", **_at(8, 15),
             "location": "MQ du Petit-Pantin, 22 r. Cartier-Bresson, 93500 Pantin"}
    courtillieres = {"title": "Accueil de jour", "location": PANTIN_MQ, **_at(8, 15, 60)}
    assert score_pair(petit, courtillieres).decision == "different"
    # All-day events on one date: a shared date says little when the titles differ.
    day = dt.date(2027, 9, 18)
    screening = {"title": "Dépistage santé", "all_day": True, "start": None,
                 "start_date": day, "location": PANTIN_MQ}
    beginners = dict(screening, title="Dépistage santé débutants")
    assert score_pair(screening, beginners).decision == "review"


def test_the_same_event_written_another_way_is_still_merged() -> None:
    young = {"title": "Ciné-débat pour les jeunes", **_at(8, 30, 60),
             "location": "Espace Cocteau, 4 rue Lapérouse, 93500 Pantin"}
    copy = {"title": "CINE-DEBAT à destination des jeunes - Pantin", **_at(8, 30, 60),
            "location": "Espace Cocteau, 4 r. Lapérouse, 93500 Pantin"}
    assert score_pair(young, copy).decision == "same"
    # ten minutes late on both start and end (a clerical difference), known place abbreviated
    a = {"title": "Distribution alimentaire", **_at(13, 0, 120),
         "location": "Maison de quartier des Quatre-Chemins"}
    b = {"title": "DISTRIBUTION ALIMENTAIRE", **_at(13, 10, 120), "location": "MQ des 4 Chemins"}
    assert score_pair(a, b).decision == "same"


def _snapshot(session: Session) -> tuple[dict[str, tuple], set[tuple]]:
    session.expire_all()
    events = {e.id: (e.cluster_id, e.is_canonical, e.field_sources, e.description, e.themes)
              for e in session.exec(select(Event))}
    sources = {(r.id, r.cluster_id, r.confidence) for r in session.exec(select(EventSource))}
    return events, sources


def test_incremental_run_recomputes_only_changed_days_and_equals_a_full_run(
        tmp_path: Path, database_url: str) -> None:
    session = _store(tmp_path, database_url)
    other_day = dt.datetime(2026, 12, 9, 13, 0, tzinfo=dt.UTC)
    session.add(_event("sp-2", "secours-populaire", "Vestiaire solidaire", other_day,
                       location="Maison de quartier des Quatre-Chemins", first_seen_at=NOW))
    session.add(_event("m-10", "mairie-pantin", "Repair café", other_day,
                       location="Maison de quartier du Petit-Pantin", first_seen_at=NOW))
    session.commit()
    first = deduplicate(session, NOW)
    assert first.full and first.days == 2 and first.recomputed == 6
    again = deduplicate(session, NOW)
    assert (again.full, again.days, again.recomputed, again.clusters) == (False, 0, 0, 5)
    # The municipal agenda lists the Vestiaire too (a new duplicate on 9 December); the
    # partner's newsletter drops its Atelier numérique (2 December).
    session.add(_event("m-11", "mairie-pantin", "VESTIAIRE SOLIDAIRE", other_day,
                       location="MQ des 4 Chemins", first_seen_at=NOW))
    gone = session.get(Event, "lettre-partenaire--n-5")
    gone.removed_at_source = NOW
    session.add(gone)
    session.commit()
    step = deduplicate(session, NOW)
    assert not step.full and step.days == 2
    assert session.get(Event, "mairie-pantin--m-11").cluster_id == cluster_id_for(
        ["mairie-pantin--m-11", "secours-populaire--sp-2"])
    assert not session.exec(select(EventSource).where(
        EventSource.event_id == "lettre-partenaire--n-5")).all()
    incremental = _snapshot(session)
    assert deduplicate(session, NOW, full=True).full
    assert _snapshot(session) == incremental
    # Only the changed event is compared again, with the events of its day: a change on
    # 9 December leaves 2 December and the Vestiaire's cluster alone.
    repair = session.get(Event, "mairie-pantin--m-10")
    repair.title = "Repair café du mercredi"
    session.add(repair)
    session.commit()
    step = deduplicate(session, NOW)
    assert (step.days, step.recomputed, step.candidate_pairs) == (1, 1, 1)
    assert _snapshot(session)[0]["mairie-pantin--m-11"] == incremental[0]["mairie-pantin--m-11"]
    changed = _snapshot(session)
    deduplicate(session, NOW, full=True)
    assert _snapshot(session) == changed
    session.close()


def test_a_decision_taken_after_a_run_applies_at_the_next_incremental_run(
        tmp_path: Path, database_url: str) -> None:
    session = _store(tmp_path, database_url)
    start = dt.datetime(2026, 12, 2, 13, 0, tzinfo=dt.UTC)
    session.add(_event("r-1", "mairie-pantin", "Atelier numérique : démarches en ligne",
                       start + dt.timedelta(minutes=25)))
    session.add(_event("r-2", "lettre-partenaire", "Aide aux démarches en ligne", start))
    session.commit()
    deduplicate(session, NOW)
    key = pair_key("mairie-pantin--r-1", "lettre-partenaire--r-2")
    assert key in [i.decision.pair_key for i in pending_reviews(session)]
    record_decision(session, key, "same", by="test", now=NOW)
    step = deduplicate(session, NOW)
    assert not step.full and step.days == 1
    assert (session.get(Event, "mairie-pantin--r-1").cluster_id
            == session.get(Event, "lettre-partenaire--r-2").cluster_id)
    session.close()


def test_dedupe_run_command_is_incremental_unless_full(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tissu.cli import app

    _store(tmp_path).close()
    url = f"sqlite:///{tmp_path / 'dedupe.db'}"
    runner = CliRunner()
    first = runner.invoke(app, ["dedupe", "run", "--db", url])
    assert first.exit_code == 0, first.output
    assert "tout recomparé" in first.output and "1 doublons fusionnés" in first.output
    again = runner.invoke(app, ["dedupe", "run", "--db", url])
    assert "0 recomparé(s), le reste inchangé" in again.output
    forced = runner.invoke(app, ["dedupe", "run", "--db", url, "--full"])
    assert "tout recomparé" in forced.output and "1 doublons fusionnés" in forced.output
