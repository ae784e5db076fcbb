from tests.conftest import SIRET_A


def test_register_login_list(cli, admin_a):
    rows = cli.json("accounts", "list")
    assert [r["identifier"] for r in rows] == [admin_a]
    assert rows[0]["establishment"] == SIRET_A
    assert cli.ok("history", "verify")
