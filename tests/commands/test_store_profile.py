"""init, store status | upgrade, profile list | add | use | remove, and the store selection precedence."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pepsctl import config
from pepsctl.store.models import SCHEMA_VERSION
from tests.conftest import SIRET_A, activate, last_sms_code, register

STATUS_KEYS = [
    "store",
    "source",
    "dialect",
    "schema_version",
    "expected_version",
    "pending_migrations",
    "counts",
    "catalogue_version",
    "expected_catalogue",
]
COUNT_KEYS = ["establishments", "accounts", "history_events", "outbox_messages"]
PROFILE_KEYS = ["name", "store", "active", "outbox"]
UNREACHABLE_PG = "postgresql://postgres@127.0.0.1:1/x"


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    """pepsctl with no implicit --store: the precedence of cli.md applies."""
    from pepsctl.cli import app

    return CliRunner().invoke(app, list(args), input=input, env=env, catch_exceptions=False)


def status_of(*args: str, env: dict[str, str] | None = None) -> dict:
    result = run(*args, "store", "status", "--format", "json", env=env)
    assert result.exit_code == 0, (result.exit_code, result.stderr)
    return json.loads(result.stdout)


def display_of(url: str) -> str:
    from pepsctl.store.engine import parse_store_url

    return parse_store_url(url).display


def profiles_path() -> Path:
    return config.config_dir() / "profiles.toml"


def new_sqlite_store(tmp_path: Path, name: str) -> str:
    path = tmp_path / name / "pepsctl.db"
    result = run("--store", str(path), "init")
    assert result.exit_code == 0, result.stderr
    return str(path)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- store status ----------------------------------------------------------------------------------


def test_store_status_json_keys(cli, store_url):
    data = cli.json("store", "status")
    assert list(data) == STATUS_KEYS
    assert list(data["counts"]) == COUNT_KEYS
    assert data["store"] == display_of(store_url)
    assert data["source"] == "option"
    assert data["dialect"] == ("sqlite" if store_url.startswith("sqlite") else "postgresql")
    assert data["schema_version"] == data["expected_version"] == SCHEMA_VERSION
    assert data["pending_migrations"] == []
    assert data["counts"] == dict.fromkeys(COUNT_KEYS, 0)
    assert data["catalogue_version"] == data["expected_catalogue"] is not None


def test_store_status_counts_follow_use(cli, admin_a):
    counts = cli.json("store", "status")["counts"]
    assert counts["establishments"] == 1
    assert counts["accounts"] == 1
    # The registration's SMS code, the activation e-mail, and the SMS codes of the first login
    # (conftest.login's first try and its with_code each send one).
    assert counts["outbox_messages"] == 4
    assert counts["history_events"] >= 3


def test_store_status_table_and_csv(cli):
    table = cli.ok("store", "status")
    assert SCHEMA_VERSION in table.stdout
    csv_out = cli.ok("store", "status", "--format", "csv").stdout.splitlines()
    assert csv_out[0].split(",")[:6] == STATUS_KEYS[:6]


# -- init ------------------------------------------------------------------------------------------


def test_init_twice_is_fine_and_keeps_the_store(cli):
    """init on an initialised store changes nothing: data, the code key (codes stay valid)."""
    register_args = (
        "establishments",
        "register",
        "--siret",
        SIRET_A,
        "--name",
        "Mairie",
        "--fund",
        "CNRACL=C-1234",
        "--admin-civility",
        "MME",
        "--admin-last-name",
        "Durand",
        "--admin-first-name",
        "Marie",
        "--admin-email",
        "marie.durand@example.fr",
        "--admin-phone",
        "06 10 20 30 40",
    )
    # The registration sends its one-time code before init runs twice; it must still work after.
    assert cli(*register_args).exit_code == 6
    sms_code = last_sms_code(cli)
    before = cli.json("store", "status")
    first = cli.ok("init")
    second = cli.ok("init")
    for result in (first, second):
        assert "is ready" in result.stderr
        assert result.stdout == ""
    assert cli.json("store", "status") == before
    # The one-time code sent before both inits still works: the code key was not replaced...
    data = cli.json(*register_args, "--otp", sms_code)
    before = cli.json("store", "status")
    cli.ok("init")
    assert cli.json("store", "status") == before
    # ...and so does the activation code issued before the third init.
    activate(cli, data["administrator"], "marie.durand@example.fr")
    assert cli("history", "verify").exit_code == 0


def test_init_creates_then_reports_ready(tmp_path):
    path = tmp_path / "fresh" / "store.db"
    first = run("--store", str(path), "init")
    assert first.exit_code == 0, first.stderr
    assert f"Created the store {path}." in first.stderr
    second = run("--store", str(path), "init")
    assert second.exit_code == 0
    assert f"The store {path} is ready." in second.stderr
    assert status_of("--store", str(path))["schema_version"] == SCHEMA_VERSION


def test_init_demo_twice_adds_the_demo_once(cli):
    cli.ok("init", "--demo")
    counts = cli.json("store", "status")["counts"]
    assert counts["establishments"] == 5  # the Mairie, the centre de gestion, the CCAS, the Syndicat, the SIVOM
    assert counts["accounts"] >= 1
    again = cli.ok("init", "--demo")
    assert "already there" in again.stderr
    assert cli.json("store", "status")["counts"] == counts
    assert cli("history", "verify").exit_code == 0


# -- a store that cannot be used -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("store", "status"),
        ("store", "upgrade"),
        ("accounts", "list"),
        ("history", "verify"),
        ("outbox", "list"),
        ("whoami",),
    ],
)
def test_missing_sqlite_file_exits_9_naming_init(tmp_path, args):
    path = tmp_path / "nowhere" / "store.db"
    result = run("--store", str(path), *args)
    assert result.exit_code == 9, (result.exit_code, result.stderr)
    assert result.stdout == ""
    assert "pepsctl init" in result.stderr
    assert "Traceback" not in result.stderr
    assert not path.exists() and not path.parent.exists()


def test_login_on_a_missing_store_exits_9(tmp_path):
    path = tmp_path / "nowhere" / "store.db"
    result = run("--store", str(path), "login", "MDU000001", "--password-stdin", input="x" * 12 + "\n")
    assert result.exit_code == 9
    assert "pepsctl init" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("store", "status"),
        ("store", "upgrade"),
        ("init",),
        ("accounts", "list"),
        ("history", "verify"),
        ("outbox", "list"),
    ],
)
def test_unreachable_postgresql_exits_9_in_one_or_two_lines(args, monkeypatch):
    monkeypatch.setenv(config.ENV_OUTBOX, "1")  # so that 'outbox list' reaches the store
    result = run("--store", UNREACHABLE_PG, *args)
    assert result.exit_code == 9, (result.exit_code, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, lines
    assert lines[0].startswith("Error: ")
    assert "127.0.0.1" in lines[0]
    if len(lines) == 2:
        assert lines[1].startswith("Hint: ")
    assert "Traceback" not in result.stderr


def test_unreachable_postgresql_never_shows_the_password():
    result = run("--store", "postgresql://postgres:pw-sekrit@127.0.0.1:1/x", "store", "status")
    assert result.exit_code == 9
    assert "pw-sekrit" not in result.stderr + result.stdout
    assert "postgresql://postgres:***@127.0.0.1:1/x" in result.stderr


def test_debug_shows_the_traceback(monkeypatch):
    from pepsctl.errors import StoreError

    monkeypatch.setenv(config.ENV_DEBUG, "1")
    from pepsctl.cli import app

    with pytest.raises(StoreError):
        CliRunner().invoke(app, ["--store", UNREACHABLE_PG, "store", "status"], catch_exceptions=False)


# -- store selection precedence --------------------------------------------------------------------


def test_default_store_is_a_file_in_the_data_dir(tmp_path):
    expected = Path(config.data_dir()) / "pepsctl.db"
    assert str(expected).startswith(str(tmp_path))  # PEPSCTL_DATA_DIR, from the isolation fixture
    missing = run("accounts", "list")
    assert missing.exit_code == 9
    assert str(expected) in missing.stderr and "pepsctl init" in missing.stderr
    assert run("init").exit_code == 0
    assert expected.exists()
    assert _mode(expected) == 0o600
    data = status_of()
    assert data["source"] == "default"
    assert data["store"] == str(expected)


def test_active_profile_beats_the_default(store_url):
    result = run("profile", "add", "shared", "--store", store_url)
    assert result.exit_code == 0, result.stderr
    data = status_of()
    assert data["source"] == "profile:shared"
    assert data["store"] == display_of(store_url)


def test_environment_beats_the_active_profile(store_url, tmp_path):
    other = new_sqlite_store(tmp_path, "from-env")
    assert run("profile", "add", "shared", "--store", store_url).exit_code == 0
    data = status_of(env={config.ENV_STORE: other})
    assert data["source"] == "env"
    assert data["store"] == other


def test_option_beats_the_environment(store_url, tmp_path):
    other = new_sqlite_store(tmp_path, "from-env")
    assert run("profile", "add", "shared", "--store", other).exit_code == 0
    data = status_of("--store", store_url, env={config.ENV_STORE: other})
    assert data["source"] == "option"
    assert data["store"] == display_of(store_url)


def test_profile_option_and_variable_choose_a_profile(store_url, tmp_path):
    local = new_sqlite_store(tmp_path, "local")
    assert run("profile", "add", "local", "--store", local).exit_code == 0  # active (the first one)
    assert run("profile", "add", "shared", "--store", store_url).exit_code == 0
    assert status_of()["source"] == "profile:local"
    assert status_of("--profile", "shared")["source"] == "profile:shared"
    assert status_of(env={config.ENV_PROFILE: "shared"})["store"] == display_of(store_url)


def test_the_selected_store_is_really_used(cli, store_url, tmp_path):
    """Not only reported: an establishment registered through the profile is in that store."""
    assert run("profile", "add", "shared", "--store", store_url).exit_code == 0
    other = new_sqlite_store(tmp_path, "other")
    register(cli, SIRET_A)
    assert status_of()["counts"]["establishments"] == 1
    assert status_of(env={config.ENV_STORE: other})["counts"]["establishments"] == 0


@pytest.mark.parametrize("how", ["option", "env", "active"])
def test_unknown_profile_exits_4(tmp_path, how):
    local = new_sqlite_store(tmp_path, "local")
    assert run("profile", "add", "local", "--store", local).exit_code == 0
    if how == "option":
        result = run("--profile", "nope", "store", "status")
    elif how == "env":
        result = run("store", "status", env={config.ENV_PROFILE: "nope"})
    else:
        path = profiles_path()
        path.write_text(path.read_text(encoding="utf-8").replace('active = "local"', 'active = "nope"'))
        result = run("store", "status")
    assert result.exit_code == 4, (result.exit_code, result.stderr)
    assert "nope" in result.stderr
    assert "pepsctl profile list" in result.stderr


# -- profiles --------------------------------------------------------------------------------------


def test_profile_add_writes_a_private_toml_file(tmp_path):
    local = new_sqlite_store(tmp_path, "local")
    result = run("profile", "add", "local", "--store", f"sqlite:///{local}")
    assert result.exit_code == 0, result.stderr
    assert "Profile local saved" in result.stderr
    path = profiles_path()
    assert path.parent == Path(config.config_dir())
    assert _mode(path) == 0o600
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data == {"active": "local", "profiles": {"local": {"store": local}}}


def test_profile_file_stays_private_after_every_change(tmp_path):
    local = new_sqlite_store(tmp_path, "local")
    path = profiles_path()
    for args in (
        ("profile", "add", "a", "--store", local),
        ("profile", "add", "b", "--store", UNREACHABLE_PG, "--outbox"),
        ("profile", "use", "b"),
        ("profile", "remove", "a"),
    ):
        result = run(*args)
        assert result.exit_code == 0, (args, result.stderr)
        assert _mode(path) == 0o600, args
    assert not list(path.parent.glob("*.tmp"))


def test_profile_list_use_remove(tmp_path):
    local = new_sqlite_store(tmp_path, "local")
    assert run("profile", "add", "local", "--store", local).exit_code == 0
    assert (
        run("profile", "add", "cdg", "--store", "postgresql://peps@db.example.fr:5432/peps", "--outbox").exit_code == 0
    )

    def listed() -> list[dict]:
        result = run("profile", "list", "--format", "json")
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    rows = listed()
    assert all(list(row) == PROFILE_KEYS for row in rows)
    assert rows == [
        {"name": "cdg", "store": "postgresql://peps@db.example.fr:5432/peps", "active": False, "outbox": True},
        {"name": "local", "store": local, "active": True, "outbox": False},
    ]

    result = run("profile", "use", "cdg")
    assert result.exit_code == 0
    assert "Now using profile cdg." in result.stderr
    assert [r["name"] for r in listed() if r["active"]] == ["cdg"]
    assert tomllib.loads(profiles_path().read_text(encoding="utf-8"))["active"] == "cdg"

    result = run("profile", "remove", "cdg")
    assert result.exit_code == 0
    assert [r["name"] for r in listed()] == ["local"]
    assert not any(r["active"] for r in listed())
    # With no active profile, the default store is used again.
    assert run("store", "status").exit_code == 9  # the default file does not exist
    assert "active" not in tomllib.loads(profiles_path().read_text(encoding="utf-8"))


def test_profile_add_use_makes_it_active(tmp_path):
    local = new_sqlite_store(tmp_path, "local")
    assert run("profile", "add", "one", "--store", local).exit_code == 0
    assert run("profile", "add", "two", "--store", local).exit_code == 0
    assert status_of()["source"] == "profile:one"  # the second one did not take over
    assert run("profile", "add", "three", "--store", local, "--use").exit_code == 0
    assert status_of()["source"] == "profile:three"


def test_profile_list_empty(tmp_path):
    result = run("profile", "list", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert not profiles_path().exists()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://peps:Secret-PW-42@db.example.fr:5432/peps",
        "postgresql://peps:Secret-PW-42@db.example.fr/peps?sslmode=require",
        "postgres://peps:Secret-PW-42@db.example.fr/peps",
    ],
)
def test_profile_with_a_password_in_the_url_is_refused_and_never_written(tmp_path, url):
    local = new_sqlite_store(tmp_path, "local")
    assert run("profile", "add", "local", "--store", local).exit_code == 0
    before = profiles_path().read_bytes()
    result = run("profile", "add", "cdg", "--store", url, "--use")
    assert result.exit_code == 3, (result.exit_code, result.stderr)
    assert "password" in result.stderr
    assert "--ask-password" in result.stderr
    assert "Secret-PW-42" not in result.stderr + result.stdout
    assert profiles_path().read_bytes() == before
    for path in Path(config.config_dir()).rglob("*"):
        if path.is_file():
            assert b"Secret-PW-42" not in path.read_bytes(), path


def test_profile_with_a_password_is_refused_even_as_the_first_profile():
    result = run("profile", "add", "cdg", "--store", "postgresql://peps:Secret-PW-42@db.example.fr/peps")
    assert result.exit_code == 3
    assert not profiles_path().exists()


def test_ask_password_keeps_it_in_the_keyring_only(isolate, monkeypatch):
    import pepsctl.commands.profile as profile_commands

    monkeypatch.setattr(profile_commands, "interactive", lambda: True)
    url = "postgresql://peps@db.example.fr:5432/peps"
    result = run("profile", "add", "cdg", "--store", url, "--ask-password", input="Keyring-PW-99\n")
    assert result.exit_code == 0, result.stderr
    assert isolate.items == {("pepsctl-store", url): "Keyring-PW-99"}
    assert b"Keyring-PW-99" not in profiles_path().read_bytes()
    assert "Keyring-PW-99" not in result.stdout + result.stderr
    # Removing the profile removes its password from the keyring too.
    assert run("profile", "remove", "cdg").exit_code == 0
    assert isolate.items == {}


def test_ask_password_without_a_terminal_exits_2_and_writes_nothing():
    result = run("profile", "add", "cdg", "--store", "postgresql://peps@db.example.fr/peps", "--ask-password")
    assert result.exit_code == 2
    assert "PEPSCTL_STORE_PASSWORD" in result.stderr
    assert not profiles_path().exists()


def test_ask_password_for_a_sqlite_store_is_a_usage_error(tmp_path):
    result = run("profile", "add", "local", "--store", str(tmp_path / "x.db"), "--ask-password")
    assert result.exit_code == 2
    assert not profiles_path().exists()


@pytest.mark.parametrize("name", ["", "bad name", "a/b", "x" * 41, "nom-accentué"])
def test_bad_profile_names_exit_3(tmp_path, name):
    result = run("profile", "add", name, "--store", str(tmp_path / "x.db"))
    assert result.exit_code == 3, (result.exit_code, result.stderr)
    assert not profiles_path().exists()


def test_bad_store_url_in_profile_add_exits_3():
    result = run("profile", "add", "x", "--store", "mysql://u@h/db")
    assert result.exit_code == 3
    assert not profiles_path().exists()


@pytest.mark.parametrize("command", ["use", "remove"])
def test_unknown_profile_in_use_or_remove_exits_4(tmp_path, command):
    local = new_sqlite_store(tmp_path, "local")
    assert run("profile", "add", "local", "--store", local).exit_code == 0
    before = profiles_path().read_bytes()
    result = run("profile", command, "nope")
    assert result.exit_code == 4
    assert "nope" in result.stderr
    assert profiles_path().read_bytes() == before


def test_unreadable_profiles_file_exits_3(tmp_path):
    path = profiles_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("active = [broken\n", encoding="utf-8")
    result = run("profile", "list")
    assert result.exit_code == 3
    assert str(path) in result.stderr


def test_profile_outbox_allows_the_outbox_on_a_remote_store(store_url, monkeypatch):
    """Through a profile with outbox = true, a PostgreSQL store may use the built-in outbox."""
    monkeypatch.delenv(config.ENV_OUTBOX, raising=False)
    assert run("profile", "add", "with-outbox", "--store", store_url, "--outbox").exit_code == 0
    assert run("profile", "add", "without", "--store", store_url).exit_code == 0
    assert run("outbox", "list", "--format", "json").exit_code == 0
    result = run("--profile", "without", "outbox", "list")
    if store_url.startswith("sqlite"):
        assert result.exit_code == 0  # the local default
    else:
        assert result.exit_code == 2
        assert "PEPSCTL_OUTBOX" in result.stderr
