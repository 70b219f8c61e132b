"""``tissu schedule --list``: the triggers in French (tissu.cli.trigger_label).

The trial: « interval[6:00:00] », « interval[1 day, 0:00:00] ».
"""

from __future__ import annotations

import datetime as dt

import pytest
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from typer.testing import CliRunner

from tissu.cli import app, trigger_label


@pytest.mark.parametrize(("period", "jitter", "label"), [
    ({"hours": 6}, None, "toutes les 6 h"),
    ({"days": 1}, None, "tous les jours"),
    ({"days": 2}, None, "tous les 2 jours"),
    ({"hours": 1}, None, "toutes les heures"),
    ({"minutes": 30}, None, "toutes les 30 min"),
    ({"minutes": 90}, None, "toutes les 1 h 30 min"),
    ({"minutes": 5}, 30, "toutes les 5 min (+ jusqu'à 30 s au hasard)"),
    ({"hours": 6}, 900, "toutes les 6 h (+ jusqu'à 15 min au hasard)"),
    ({"days": 1}, 3600, "tous les jours (+ jusqu'à 1 h au hasard)"),
])
def test_interval_triggers_are_said_in_french(period, jitter, label):
    assert trigger_label(IntervalTrigger(timezone=dt.UTC, jitter=jitter, **period)) == label


def test_a_one_off_trigger_says_when():
    when = dt.datetime(2026, 12, 5, 1, 2, 3, tzinfo=dt.UTC)
    assert trigger_label(DateTrigger(when, timezone=dt.UTC)) == (
        "une fois, le 2026-12-05 01:02:03 UTC")


def test_schedule_list_shows_french_triggers(tmp_settings):
    from apscheduler.schedulers.background import BackgroundScheduler

    from schemas.store import make_engine
    from tissu.scheduler import make_jobstore

    tmp_settings.registry.write_text("sources: []\n", encoding="utf-8")
    engine = make_engine(tmp_settings.database_url)
    store = make_jobstore(engine)
    scheduler = BackgroundScheduler(timezone=dt.UTC, jobstores={"default": store})
    scheduler.start(paused=True)
    try:
        scheduler.add_job(print, IntervalTrigger(hours=6, jitter=900, timezone=dt.UTC),
                          id="harvest:albi", name="Collecte albi")
        scheduler.add_job(print, IntervalTrigger(days=1, timezone=dt.UTC), id="harvest:b",
                          name="Collecte b")
    finally:
        scheduler.shutdown(wait=False)
    result = CliRunner().invoke(app, ["schedule", "--list", "--registry",
                                      str(tmp_settings.registry), "--db",
                                      tmp_settings.database_url], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines()
            if "harvest:" in line}
    assert "toutes les 6 h (+ jusqu'à 15 min au hasard)" in rows["harvest:albi"]
    assert "tous les jours" in rows["harvest:b"]
    assert "interval[" not in result.output
