"""Organisation duplicates (SIRET/RNA, then name + address) and event linking."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlmodel import Session

from normalize.organisations import deduplicate_organisations, link_events, organisation_groups
from schemas.models import Event, Organisation
from schemas.store import make_engine


def test_siret_then_rna_then_name_and_address() -> None:
    orgs = [
        Organisation(id="di--1", name="ACTION LOGEMENT SERVICES", siret="43323113200026"),
        Organisation(id="di--2", name="Action Logement", siret="433 231 132 00026"),
        Organisation(id="asso-a", name="Les Amis du quartier", rna="W931000001"),
        Organisation(id="asso-b", name="Amis du Quartier (association)", rna="w931000001"),
        Organisation(id="sp-pantin", name="Secours populaire français, comité de Pantin",
                     address="12 rue Berthier", postal_code="93500"),
        Organisation(id="sp-pantin-2", name="Secours Populaire Français - Comité de Pantin",
                     address="12, rue Berthier", postal_code="93500"),
        Organisation(id="sp-bobigny", name="Secours populaire français, comité de Pantin",
                     address="3 rue Carnot", postal_code="93000"),
        Organisation(id="other", name="Secours populaire français, comité de Pantin"),
    ]
    canonical = organisation_groups(orgs)
    assert canonical["di--2"] == canonical["di--1"] == "di--1"
    assert canonical["asso-b"] == "asso-a"
    assert canonical["sp-pantin-2"] == "sp-pantin"
    assert canonical["sp-bobigny"] == "sp-bobigny"  # same name, other address: not merged
    assert canonical["other"] == "other"  # a name alone never merges


def test_link_events_to_directory_organisation(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'o.db'}")
    start = dt.datetime(2026, 12, 2, 13, 0, tzinfo=dt.UTC)
    with Session(engine) as session:
        session.add(Organisation(id="di--sp", name="Secours populaire français, comité de Pantin",
                                 siret="77568224600001", source_id="data-inclusion"))
        session.add(Organisation(id="di--sp-copy", name="Secours populaire", siret="77568224600001"))
        session.add(Event(id="mairie--1", source_id="mairie", source_uid="1",
                          title="Distribution alimentaire", dtstart_utc=start,
                          organizer="SECOURS POPULAIRE FRANCAIS - comité de Pantin",
                          organisation_id="ville-de-pantin"))
        session.add(Event(id="mairie--2", source_id="mairie", source_uid="2", title="Bal",
                          dtstart_utc=start, organizer="Comité des fêtes",
                          organisation_id="ville-de-pantin"))
        session.commit()
        assert deduplicate_organisations(session) == 1
        assert session.get(Organisation, "di--sp-copy").duplicate_of == "di--sp"
        assert link_events(session) == 1
        assert session.get(Event, "mairie--1").organisation_id == "di--sp"
        assert session.get(Event, "mairie--2").organisation_id == "ville-de-pantin"

