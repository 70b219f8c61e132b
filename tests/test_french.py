"""French agreement and elision in generated sentences (tissu.french)."""

from __future__ import annotations

import pytest

from tissu.french import accord, de


@pytest.mark.parametrize(("n", "expected"), [
    (0, "0 événement est déjà publié par une autre source"),
    (1, "1 événement est déjà publié par une autre source"),
    (2, "2 événements sont déjà publiés par une autre source"),
])
def test_accord_agrees_nouns_verbs_and_participles(n, expected):
    assert accord("{n} événement(s) [est|sont] déjà publié(s) par une autre source", n) == expected


def test_accord_on_the_preview_heading():
    template = ("[La|Les {n}] prochaine(s) séance(s), telle(s) qu'elle(s) [sera|seront] "
                "publiée(s) :")
    assert accord(template, 1) == "La prochaine séance, telle qu'elle sera publiée :"
    assert accord(template, 3) == "Les 3 prochaines séances, telles qu'elles seront publiées :"
    assert accord("{n} événement(s) figure(nt) deux fois (UID)", 4) == \
        "4 événements figurent deux fois (UID)"


@pytest.mark.parametrize(("name", "expected"), [
    ("Asso des Quatre-Chemins", "d'Asso des Quatre-Chemins"),
    ("Épicerie solidaire", "d'Épicerie solidaire"),
    ("Le Secours populaire", "du Secours populaire"),
    ("Les Restos du cœur", "des Restos du cœur"),
    ("La Ruche", "de La Ruche"),
    ("Pantin Solidaire", "de Pantin Solidaire"),
    ("Yoga pour tous", "de Yoga pour tous"),
])
def test_de_elides_and_contracts(name, expected):
    assert de(name) == expected
