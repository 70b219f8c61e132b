"""Scheduled harvests (one source at a time) are deduplicated before each publish."""

import sqlite3

from sqlmodel import Session

from schemas.models import Source
from schemas.store import make_engine
from tests.conftest import NOW, SAMPLES
from tissu.pipeline import run_source
from tissu.scheduler import _default_publish


def test_scheduled_publish_shows_a_repeated_event_once(tmp_settings):
    engine = make_engine(tmp_settings.database_url)
    with Session(engine) as session:
        for source_id, kind in (("asso-lisbonne", "association"), ("ville", "service-municipal")):
            session.add(Source(id=source_id, name=source_id, publisher_name=source_id,
                               publisher_type=kind, format="ical",
                               url=str(SAMPLES / "issue_48_daylight_aware_repeats.ics"),
                               licence="Licence Ouverte 2.0"))
        session.commit()
    for source_id in ("asso-lisbonne", "ville"):
        assert run_source(engine, source_id, tmp_settings, NOW).events == 1
    outcome = _default_publish(engine, tmp_settings, NOW)
    rows = sqlite3.connect(outcome.database).execute(
        "SELECT source_id, is_canonical, cluster_id FROM events ORDER BY source_id").fetchall()
    assert [(r[0], r[1]) for r in rows] == [("asso-lisbonne", 1), ("ville", 0)]
    assert rows[0][2] is not None and rows[0][2] == rows[1][2]
