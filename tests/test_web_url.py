"""One function reads the scheme of an address (connectors.http.web_url): webcal(s):// as
https://, HTTP(S):// in lower case; the registration form and the doctor use it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connectors.doctor import diagnose
from connectors.http import web_url
from tests.conftest import NOW, SAMPLES, Route


@pytest.mark.parametrize(("typed", "read"), [
    ("webcal://exemple.fr/agenda.ics", "https://exemple.fr/agenda.ics"),
    ("WEBCALS://exemple.fr/Agenda.ics", "https://exemple.fr/Agenda.ics"),
    ("  webcal://exemple.fr/a.ics", "https://exemple.fr/a.ics"),
    ("HTTPS://Exemple.fr/A?x=HTTP://B", "https://Exemple.fr/A?x=HTTP://B"),
    ("Http://exemple.fr/", "http://exemple.fr/"),
    ("https://exemple.fr/agenda.ics", "https://exemple.fr/agenda.ics"),
    ("ftp://exemple.fr/a.ics", "ftp://exemple.fr/a.ics"),
    ("webcalx://exemple.fr/a.ics", "webcalx://exemple.fr/a.ics"),
    ("samples/ical_google.ics", "samples/ical_google.ics"),
])
def test_web_url_reads_only_the_scheme(typed, read):
    assert web_url(typed) == read


def test_the_registration_form_reads_schemes_with_web_url():
    from tissu.registrations import RegistrationForm

    common = {"organisation_name": "Asso", "organisation_type": "association",
              "contact_email": "contact@asso.fr", "licence_choice": "licence-ouverte",
              "licence_consent": True}
    form = RegistrationForm(url="WEBCAL://asso.example/Agenda.ics",
                            website="HTTPS://Asso.example/", **common)
    assert (form.url, form.website) == ("https://asso.example/Agenda.ics",
                                        "https://Asso.example/")
    assert RegistrationForm(url="HTTP://asso.example/a.ics", **common).url == \
        "http://asso.example/a.ics"
    with pytest.raises(ValidationError, match="http-url"):
        RegistrationForm(url="ftp://asso.example/agenda.ics", **common)


def test_the_doctor_advice_for_a_wrong_scheme_is_true(http_server, tmp_settings):
    # the advice said « webcal:// se remplace par https:// » although webcal:// is read as is
    ftp = diagnose("ftp://example.org/a.ics", now=NOW, settings=tmp_settings)
    [problem] = ftp.problems
    assert problem.message == "l'adresse doit commencer par https://, http:// ou webcal://"
    assert "se remplace" not in problem.fix
    assert problem.fix.endswith("une adresse webcal:// convient aussi, Tissu la lit "
                                "automatiquement comme https://.")
    # an upper-case http scheme is read as is, without the webcal note
    http_server.routes["/agenda.ics"] = Route((SAMPLES / "ical_google.ics").read_bytes(),
                                              headers={"Content-Type": "text/calendar"})
    upper = http_server.url("/agenda.ics").replace("http://", "HTTP://")
    diagnosis = diagnose(upper, now=NOW, settings=tmp_settings)
    assert diagnosis.url == http_server.url("/agenda.ics")
    assert diagnosis.notes == [] and diagnosis.usable
