"""French wording helpers: number agreement and elision of « de » in generated sentences.

French grammar as taught (Grevisse, *Le Bon Usage*): 0 and 1 take the singular ("0 événement",
"1 événement"), 2 and more the plural; « de » elides to « d' » before a vowel sound and
contracts with the articles « le » / « les » (« du », « des »).
"""

from __future__ import annotations

import re

_ALTERNATIVE = re.compile(r"\[([^\[\]|]*)\|([^\[\]|]*)\]")
_ENDING = re.compile(r"\((s|x|nt|es|e)\)")
_VOWELS = set("aeiouyàâäéèêëîïôöùûüœæ" + "AEIOUYÀÂÄÉÈÊËÎÏÔÖÙÛÜŒÆ")


def accord(text: str, n: int) -> str:
    """``text`` agreed with the number ``n`` (singular for -1 … 1, plural beyond).

    Marks: ``{n}`` → the number; an ending in parentheses — ``(s)``, ``(x)``, ``(nt)``,
    ``(es)``, ``(e)`` — is kept without its parentheses in the plural and dropped in the
    singular; ``[singulier|pluriel]`` picks one form (irregular verbs: ``[est|sont]``).

    >>> accord("{n} événement(s) [est|sont] déjà publié(s)", 1)
    '1 événement est déjà publié'
    >>> accord("{n} événement(s) figure(nt) deux fois", 3)
    '3 événements figurent deux fois'
    """
    many = abs(n) >= 2
    text = _ALTERNATIVE.sub(lambda m: m.group(2 if many else 1), text)
    text = _ENDING.sub(lambda m: m.group(1) if many else "", text)
    return text.replace("{n}", str(n))


def de(name: str) -> str:
    """« de » followed by ``name``, elided or contracted as French requires.

    ``de("Asso des Quatre-Chemins")`` → « d'Asso des Quatre-Chemins » (vowel, accented or not;
    a leading « h » is left alone, aspirated or not being a matter of the word);
    ``de("Le Secours populaire")`` → « du Secours populaire »; ``de("Les Restos")`` → « des
    Restos »; ``de("La Ruche")`` → « de La Ruche »; otherwise « de <name> ».
    """
    name = name.strip()
    lowered = name.lower()
    if lowered.startswith("les "):
        return "des " + name[4:]
    if lowered.startswith("le "):
        return "du " + name[3:]
    if name[:1] in _VOWELS and not lowered.startswith(("y ", "ya", "ye", "yo", "yu")):
        return "d'" + name
    return "de " + name
