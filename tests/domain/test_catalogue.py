"""The service catalogue: the shipped file is checked when read, and `sync` (run by `init` and
`store upgrade`) adds new services with no right for anyone and retires the ones that left the file
(no longer listed, no longer granted, their rights kept but inert)."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from pepsctl.domain import catalogue
from pepsctl.domain.catalogue import Catalogue, CatalogueEntry
from pepsctl.errors import InvalidInput
from pepsctl.store.engine import create_store_engine, parse_store_url
from tests.conftest import create_account

NEW = CatalogueEntry("pension-reversion", "Pension de réversion", "Droits à pensions", "CNRACL", True)


def service(code: str = "cir", fund: str = "CNRACL", extra: str = "sensitive = false") -> str:
    return f'\n[[service]]\ncode = "{code}"\nlabel = "Un service"\ntheme = "Carrière"\nfund = "{fund}"\n{extra}\n'


def sync(url: str, new: Catalogue) -> catalogue.SyncResult:
    engine = create_store_engine(parse_store_url(url))
    try:
        with Session(engine) as session, session.begin():
            return catalogue.sync(session, new)
    finally:
        engine.dispose()


def codes(cli) -> list[str]:
    return [s["code"] for s in cli.json("rights", "catalog")]


# -- the file ----------------------------------------------------------------------------------------


def test_the_shipped_catalogue_is_valid():
    shipped = catalogue.shipped()

    assert shipped.version
    assert len(shipped.services) >= 30
    assert len({s.code for s in shipped.services}) == len(shipped.services)
    assert [s.code for s in shipped.services if s.held_by] == ["gestion-comptes"]


def test_parse_reads_the_entries_in_order():
    parsed = catalogue.parse('version = "7"\n' + service("cir", extra="") + service("di", "ALL", "sensitive = true"))

    assert parsed == Catalogue(
        "7",
        (
            CatalogueEntry("cir", "Un service", "Carrière", "CNRACL", False, None),
            CatalogueEntry("di", "Un service", "Carrière", "ALL", True, None),
        ),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'version = "1"\n' + service("cir") + service("cir"),
            "Bad or duplicate service code 'cir' in the catalogue.",
        ),
        ('version = "1"\n' + service("CIR"), "Bad or duplicate service code 'CIR' in the catalogue."),
        ('version = "1"\n' + service("cir", fund="AGIRC"), "Bad fund or held_by for service 'cir'."),
        (
            'version = "1"\n' + service("cir", extra='sensitive = false\nheld_by = "user"'),
            "Bad fund or held_by for service 'cir'.",
        ),
        (
            'version = "1"\n' + service("cir", extra='sensitive = "false"'),
            "The sensitive flag of service 'cir' is not true or false.",
        ),
        (
            'version = "1"\n' + service("cir", extra="sensitive = 0"),
            "The sensitive flag of service 'cir' is not true or false.",
        ),
        (service("cir"), "The service catalogue has no version."),
    ],
)
def test_parse_refuses_a_bad_catalogue(text, message):
    with pytest.raises(InvalidInput) as refused:
        catalogue.parse(text)

    assert refused.value.message == message
    assert refused.value.exit_code == 3


# -- sync --------------------------------------------------------------------------------------------


def test_a_new_service_is_listed_with_no_right_for_anyone(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")
    cli.ok("rights", "grant", user, "cir", "--level", "write")
    shipped = catalogue.shipped()

    result = sync(cli.store, Catalogue("2099.1", (*shipped.services, NEW)))

    assert (result.version, result.added, result.updated, result.retired) == ("2099.1", [NEW.code], [], [])
    listed = cli.json("rights", "catalog")
    assert listed[-1] == {
        "code": "pension-reversion",
        "label": "Pension de réversion",
        "theme": "Droits à pensions",
        "fund": "CNRACL",
        "sensitive": True,
        "held_by": None,
    }
    matrix = cli.json("rights", "matrix")
    assert [r["rights"] for r in matrix] == [{"cir": "write"}, {"gestion-comptes": "write"}]
    header = cli.ok("rights", "matrix", "--format", "csv").stdout.splitlines()
    assert header[0].endswith(",gestion-comptes,pension-reversion")
    assert all(line.endswith(",") for line in header[1:])  # nobody has a right on it
    # It can then be granted like any other (sensitive: the admin_a session is stepped up).
    granted = cli.json("rights", "grant", user, "pension-reversion")
    assert [(c["service"], c["before"], c["after"]) for c in granted] == [("pension-reversion", None, "read")]


def test_a_removed_service_is_retired_and_no_longer_granted(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")
    cli.ok("rights", "grant", user, "cir", "estimation")
    shipped = catalogue.shipped()

    result = sync(cli.store, Catalogue("2099.2", tuple(s for s in shipped.services if s.code != "cir")))

    assert (result.added, result.retired) == ([], ["cir"])
    after = [s.code for s in shipped.services][[s.code for s in shipped.services].index("cir") + 1 :]
    assert result.updated == after  # the services after it moved up one position
    assert "cir" not in codes(cli)
    assert len(codes(cli)) == len(shipped.services) - 1
    refused = cli("rights", "grant", user, "cir")
    assert refused.exit_code == 4
    assert refused.stdout == ""
    assert refused.stderr.startswith("Error: No service 'cir' in the catalogue.\n")
    # The right is kept for the record, inert; the matrix no longer shows the service.
    kept = {r["service"]: r["active"] for r in cli.json("rights", "list", user)}
    assert kept == {"estimation": True, "cir": False}
    assert cli.json("rights", "matrix")[0]["rights"] == {"estimation": "read"}
    # Syncing the same catalogue again changes nothing.
    again = sync(cli.store, Catalogue("2099.2", tuple(s for s in shipped.services if s.code != "cir")))
    assert (again.added, again.updated, again.retired) == ([], [], [])
    # The inert right can still be revoked, to clean up.
    revoked = cli.json("rights", "revoke", user, "cir")
    assert [(c["service"], c["before"], c["after"]) for c in revoked] == [("cir", "read", None)]
    assert [r["service"] for r in cli.json("rights", "list", user)] == ["estimation"]


def test_a_changed_service_is_updated(cli):
    shipped = catalogue.shipped()
    changed = tuple(
        CatalogueEntry(s.code, "CIR (nouveau libellé)", s.theme, s.fund, True) if s.code == "cir" else s
        for s in shipped.services
    )

    result = sync(cli.store, Catalogue("2099.3", changed))

    assert (result.added, result.updated, result.retired) == ([], ["cir"], [])
    cir = next(s for s in cli.json("rights", "catalog") if s["code"] == "cir")
    assert (cir["label"], cir["sensitive"]) == ("CIR (nouveau libellé)", True)


# -- store upgrade -----------------------------------------------------------------------------------


def test_store_upgrade_applies_a_changed_shipped_catalogue(cli, monkeypatch):
    old = catalogue.shipped()
    new = Catalogue("2099.4", (*old.services, NEW))
    monkeypatch.setattr(catalogue, "shipped", lambda: new)

    status = cli.json("store", "status")
    assert (status["catalogue_version"], status["expected_catalogue"]) == (old.version, "2099.4")
    assert NEW.code not in codes(cli)

    result = cli("store", "upgrade")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == "Applied: catalogue 2099.4.\n"
    status = cli.json("store", "status")
    assert (status["catalogue_version"], status["expected_catalogue"]) == ("2099.4", "2099.4")
    assert codes(cli)[-1] == NEW.code
    again = cli("store", "upgrade")
    assert (again.exit_code, again.stderr) == (0, "The store is up to date.\n")
