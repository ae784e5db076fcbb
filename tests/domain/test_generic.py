"""The generic-account heuristic (pepsctl.domain.generic.generic_signals), as a pure function.

domain.md "Accounts": one account per person, no shared or generic accounts ("accueil",
"secretariat", "mairie", a service mailbox…). A strong signal accuses alone; weak ones need a
second, so a real surname that happens to be a role word ("Paye", "Service") accuses nobody.
The reasons are pinned exactly: they are what `audit generic` shows the administrator.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pepsctl.domain.generic import ROLE_WORDS, SURNAME_ROLE_WORDS, fold, generic_signals

# -- examples ----------------------------------------------------------------------------------------

GENERIC = [
    pytest.param(
        "Accueil",
        "Mairie",
        "accueil@demoville.example.fr",
        ["first name 'Accueil' is a role, not a person", "last name 'Mairie' is a role word"],
        id="accueil-mairie",
    ),
    pytest.param(
        "Jean",
        "Paye",
        "rh@mairie.example.fr",
        ["the mailbox 'rh' is a role's", "last name 'Paye' is a role word"],
        id="real-surname-with-a-role-mailbox",
    ),
    pytest.param(
        "Jeanne et Paul", "Dupont", "dupont@mairie.example.fr", ["several people in one name"], id="two-people"
    ),
    pytest.param(
        "Sophie",
        "Martin",
        "secretariat.mairie@mairie.example.fr",
        ["the mailbox 'secretariat.mairie' is a role's"],
        id="role-mailbox",
    ),
    pytest.param(
        "Secrétariat",
        "Général",
        "sg@mairie.example.fr",
        ["first name 'Secrétariat' is a role, not a person"],
        id="accented-role-first-name",
    ),
    pytest.param(
        "SECRÉTARIAT",
        "Dupont",
        "s.dupont@mairie.example.fr",
        ["first name 'SECRÉTARIAT' is a role, not a person"],
        id="upper-case-accented-role",
    ),
    pytest.param(
        "Ressources humaines",
        "Ville",
        "r.ville@mairie.example.fr",
        ["first name 'Ressources humaines' is a role, not a person"],
        id="role-in-a-two-word-name",
    ),
    pytest.param(
        "Jean",
        "Bureau 2",
        "jean.bureau@mairie.example.fr",
        ["last name 'Bureau 2' is a role word", "digits in the name"],
        id="two-weak-signals",
    ),
    pytest.param(
        "Marie",
        "Service",
        "marie.service.rh@mairie.example.fr",
        ["last name 'Service' is a role word", "the mailbox 'marie.service.rh' is a role's"],
        id="role-surname-and-role-word-beside-the-name",
    ),
]

PERSONAL = [
    pytest.param("Jean", "Paye", "jean.paye@mairie.example.fr", id="real-surname-paye"),
    pytest.param("Marie", "Service", "marie.service@mairie.example.fr", id="real-surname-service"),
    pytest.param("Élodie", "Lefèvre", "elodie.lefevre@mairie.example.fr", id="accented-person"),
    pytest.param("Jeanne", "Dupont", "jeanne.dupont@mairie.example.fr", id="plain-person"),
    pytest.param("Marie-Claire", "Dupont-Martin", "mc.dupont-martin@mairie.example.fr", id="hyphenated-names"),
    pytest.param("Paul", "Leroy", "paul.leroy.rh@mairie.example.fr", id="one-weak-mailbox-signal-alone"),
    pytest.param("Hugo", "Lambert2", "hugo.lambert2@mairie.example.fr", id="digits-alone"),
]


@pytest.mark.parametrize(("first", "last", "email", "reasons"), GENERIC)
def test_generic_accounts_and_their_reasons(first, last, email, reasons):
    assert generic_signals(first, last, email, mailbox_shared=False) == reasons


@pytest.mark.parametrize(("first", "last", "email"), PERSONAL)
def test_personal_accounts_are_not_accused(first, last, email):
    assert generic_signals(first, last, email, mailbox_shared=False) == []


def test_a_mailbox_used_by_several_accounts_accuses_alone():
    assert generic_signals("Paul", "Leroy", "paul.leroy@mairie.example.fr", mailbox_shared=True) == [
        "the mailbox is used by several accounts"
    ]


def test_the_surname_exceptions_are_role_words():
    # A surname exception that is not a role word would never be looked at: the lists would drift.
    assert SURNAME_ROLE_WORDS <= ROLE_WORDS
    assert all(word == fold(word) for word in ROLE_WORDS)  # the lists are folded: no accent, lower case


# -- properties --------------------------------------------------------------------------------------

FIRST_NAMES = ["Jeanne", "Paul", "Élodie", "Karim", "Léa", "Hélène", "François", "Zoé", "Jean-Pierre", "Anaïs"]
LAST_NAMES = ["Dupont", "Lefèvre", "Benali", "Paye", "Service", "Bureau", "Girard", "Le Gall", "N'Diaye", "Côté"]
ACCENTS = {"e": "eéèêë", "a": "aàâä", "i": "iîï", "o": "oôö", "u": "uùûü", "c": "cç"}


def spelled(word: str, draw) -> str:
    """``word`` with any letter accented and in any case, the way people type names."""
    letters = []
    for ch in word:
        ch = draw(st.sampled_from(ACCENTS.get(ch, ch)))
        letters.append(ch.upper() if draw(st.booleans()) else ch)
    return "".join(letters)


@st.composite
def people(draw) -> tuple[str, str, str]:
    first, last = draw(st.sampled_from(FIRST_NAMES)), draw(st.sampled_from(LAST_NAMES))
    local = ".".join(fold(part).replace(" ", "").replace("'", "") for part in (first, last))
    return first, last, f"{local}@{draw(st.sampled_from(['mairie.example.fr', 'cdg.example.fr']))}"


@given(people())
def test_a_person_with_their_own_nominative_mailbox_is_never_accused(person):
    first, last, email = person
    assert generic_signals(first, last, email, mailbox_shared=False) == []


@st.composite
def role_first_names(draw) -> tuple[str, str, str]:
    role = draw(st.sampled_from(sorted(ROLE_WORDS)))
    return spelled(role, draw), draw(st.sampled_from(LAST_NAMES)), draw(people())[2]


@given(role_first_names())
def test_a_role_as_first_name_is_accused_whatever_its_accents_and_case(account):
    first, last, email = account
    reasons = generic_signals(first, last, email, mailbox_shared=False)
    assert f"first name {first!r} is a role, not a person" in reasons


@given(people(), st.booleans())
def test_accents_and_case_of_the_names_do_not_change_the_verdict(person, shared):
    first, last, email = person
    verdict = bool(generic_signals(first, last, email, mailbox_shared=shared))
    assert bool(generic_signals(first.upper(), last.upper(), email, mailbox_shared=shared)) == verdict
    assert bool(generic_signals(fold(first), fold(last), email, mailbox_shared=shared)) == verdict
    assert verdict is shared
