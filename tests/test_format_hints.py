"""A source declared in the wrong format is told what it actually is (real sample files)."""

from connectors.feeds import parse_feed
from connectors.ical import parse_ical
from tests.conftest import SAMPLES


def test_calendar_declared_as_rss():
    result = parse_feed((SAMPLES / "issue_48_daylight_aware_repeats.ics").read_bytes())
    assert "indiquez « format: ical »" in str(result.errors[0])


def test_feed_declared_as_ical():
    result = parse_ical((SAMPLES / "agenda_region_aquitaine_spip_rss.xml").read_bytes())
    assert "indiquez « format: rss »" in str(result.errors[0])


def test_empty_file():
    assert "le fichier est vide" in str(parse_ical(b"").errors[0])
    assert "le fichier est vide" in str(parse_feed(b"\xef\xbb\xbf\n").errors[0])
