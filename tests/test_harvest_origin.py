"""Only the seed registry may point at bundled files: a registered source's path is refused."""

from sqlmodel import Session, select

from schemas.models import Event, Source
from schemas.store import make_engine
from tests.conftest import NOW, SAMPLES
from tissu.pipeline import run_source


def add_source(engine, source_id: str, origin: str) -> None:
    with Session(engine) as session:
        session.add(Source(id=source_id, name=source_id, publisher_name="Asso",
                           publisher_type="association", format="ical",
                           url=str(SAMPLES / "issue_48_daylight_aware_repeats.ics"),
                           licence="Licence Ouverte 2.0", origin=origin))
        session.commit()


def test_registered_source_cannot_read_a_local_file(tmp_settings):
    engine = make_engine(tmp_settings.database_url)
    add_source(engine, "seed", "registry")
    add_source(engine, "inscrite", "registration")
    seed = run_source(engine, "seed", tmp_settings, NOW)
    registered = run_source(engine, "inscrite", tmp_settings, NOW)
    assert seed.status == "ok" and seed.events == 1
    assert registered.status == "failed"
    assert registered.errors[0].startswith("inscrite : ")
    with Session(engine) as session:
        sources = {e.source_id for e in session.exec(select(Event))}
    assert sources == {"seed"}
