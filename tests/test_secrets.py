"""pepsctl.secrets: session tokens without an OS keyring, and remote store passwords.

The headless case runs pepsctl in a subprocess with ``PYTHON_KEYRING_BACKEND`` naming keyring's
``fail`` backend (which raises ``NoKeyringError`` even on reads), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from pepsctl import config, secrets
from pepsctl.errors import PepsError, StoreError
from tests.conftest import PASSWORD, SIRET_A

FAIL_BACKEND = "keyring.backends.fail.Keyring"
EMAIL = "marie.durand@mairie.example.fr"
STORE = "postgresql://pepsctl@db.example.fr:5432/peps"


class PlaintextMemoryKeyring(KeyringBackend):
    """Stands for keyrings.alt's PlaintextKeyring: keeps passwords, but in clear."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


class ForgetfulKeyring(KeyringBackend):
    """Accepts every password and keeps none (a misconfigured backend)."""

    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        return None

    def delete_password(self, service: str, username: str) -> None:
        return None


@pytest.fixture
def no_keyring(monkeypatch):
    """In-process: keyring's fail backend, and the one-line warning not yet printed."""
    keyring.set_keyring(fail.Keyring())
    monkeypatch.setattr(secrets, "_warned", False)


# -- headless: a subprocess with no keyring backend ----------------------------------------------


def run(env: dict[str, str], *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pepsctl", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def headless(store_url, tmp_path) -> dict[str, str]:
    """The environment of a headless machine: no keyring, its own directories and store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON_KEYRING")}
    env["PYTHON_KEYRING_BACKEND"] = FAIL_BACKEND
    for name, sub in (
        (config.ENV_CONFIG_DIR, "h-config"),
        (config.ENV_DATA_DIR, "h-data"),
        (config.ENV_STATE_DIR, "h-state"),
    ):
        env[name] = str(tmp_path / sub)
    env.pop(config.ENV_STORE, None)
    if store_url.startswith("postgresql"):
        env[config.ENV_STORE] = store_url  # already initialised; PEPSCTL_OUTBOX=1 comes with it
    # SQLite: the default store in the data directory, created by 'init' below.
    return env


def last_sms_code(env: dict[str, str]) -> str:
    """The newest one-time code sent by SMS, read from the outbox in a subprocess."""
    outbox = run(env, "outbox", "list", "--format", "json")
    assert outbox.returncode == 0, outbox.stderr
    codes = [m["code"] for m in json.loads(outbox.stdout) if m["channel"] == "sms" and m["code"]]
    assert codes, outbox.stdout
    return codes[-1]


def test_without_keyring_init_and_login_work_with_a_0600_token_file(headless):
    result = run(headless, "init")
    assert result.returncode == 0, result.stderr
    register_args = (
        "establishments",
        "register",
        "--siret",
        SIRET_A,
        "--name",
        "Mairie de Démoville",
        "--fund",
        "CNRACL=C-1234",
        "--admin-civility",
        "MME",
        "--admin-last-name",
        "Durand",
        "--admin-first-name",
        "Marie",
        "--admin-email",
        EMAIL,
        "--admin-phone",
        "06 10 20 30 40",
        "--format",
        "json",
    )
    # Registration first sends a one-time code to the phone (exit 6); the same command with it completes.
    registration = run(headless, *register_args)
    assert registration.returncode == 6, registration.stderr
    registration = run(headless, *register_args, "--otp", last_sms_code(headless))
    assert registration.returncode == 0, registration.stderr
    identifier = json.loads(registration.stdout)["administrator"]
    outbox = run(headless, "outbox", "list", "--to", EMAIL, "--format", "json")
    assert outbox.returncode == 0, outbox.stderr
    code = json.loads(outbox.stdout)[-1]["code"]
    result = run(headless, "password", "set", identifier, "--code", code, "--password-stdin", input=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr  # no token was needed yet

    token_file = Path(headless[config.ENV_STATE_DIR]) / "tokens.json"
    assert not token_file.exists()
    # The first login on this workstation sends a one-time code (exit 6); the same command with it completes.
    login = run(headless, "login", identifier, "--password-stdin", input=PASSWORD + "\n")
    assert login.returncode == 6, login.stderr
    assert "Traceback" not in login.stderr
    login = run(
        headless, "login", identifier, "--password-stdin", "--otp", last_sms_code(headless), input=PASSWORD + "\n"
    )
    assert login.returncode == 0, login.stderr
    assert login.stdout == ""
    warnings = [line for line in login.stderr.splitlines() if "keyring" in line.lower()]
    assert warnings == [f"Warning: no OS keyring here; tokens are kept in {token_file} (mode 0600)."]
    assert login.stderr.splitlines()[-1].startswith(f"Logged in as {identifier} ")
    assert "Traceback" not in login.stderr

    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) & 0o077 == 0
    # The session token and the workstation trust token, both in the file.
    tokens = json.loads(token_file.read_text(encoding="utf-8"))
    assert sorted(name.split(":")[0] for name in tokens) == ["session", "trust"]
    assert all(len(token) >= 43 for token in tokens.values())
    trust = {name: token for name, token in tokens.items() if name.startswith("trust:")}
    ((trust_name, _trust_token),) = trust.items()
    assert trust_name.endswith(f":{identifier}")

    whoami = run(headless, "whoami", "--format", "json")
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["identifier"] == identifier
    assert whoami.stderr.count("Warning: no OS keyring here") == 1
    assert len(whoami.stderr.splitlines()) == 1

    logout = run(headless, "logout")
    assert logout.returncode == 0, logout.stderr
    assert logout.stderr.splitlines()[-1] == "Logged out."
    assert json.loads(token_file.read_text(encoding="utf-8")) == trust  # the session is gone; the trust stays
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    after = run(headless, "whoami")
    assert after.returncode == 6
    assert after.stdout == ""
    assert "Error: You are not logged in to this store." in after.stderr
    # The trust read back from the file: the next login on this workstation needs no code.
    again = run(headless, "login", identifier, "--password-stdin", input=PASSWORD + "\n")
    assert again.returncode == 0, again.stderr


# -- session tokens in-process -------------------------------------------------------------------


def test_token_fallback_file_in_process(no_keyring, capsys):
    secrets.set_token("session:x", "tok-1")
    secrets.set_token("trust:x", "tok-2")
    path = config.state_dir() / "tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secrets.get_token("session:x") == "tok-1"
    secrets.delete_token("session:x")
    assert secrets.get_token("session:x") is None
    assert secrets.get_token("trust:x") == "tok-2"
    err = capsys.readouterr().err
    assert err == f"Warning: no OS keyring here; tokens are kept in {path} (mode 0600).\n"  # once


def test_token_fallback_file_that_is_not_json_reads_as_empty(no_keyring, capsys):
    path = config.state_dir() / "tokens.json"
    path.parent.mkdir(parents=True)
    path.write_text("not json", encoding="utf-8")
    assert secrets.get_token("session:x") is None
    secrets.set_token("session:x", "tok")
    assert json.loads(path.read_text(encoding="utf-8")) == {"session:x": "tok"}


def test_tokens_go_to_the_keyring_when_there_is_one(isolate, capsys):
    secrets.set_token("session:x", "tok")
    assert isolate.items == {("pepsctl", "session:x"): "tok"}
    assert not (config.state_dir() / "tokens.json").exists()
    assert capsys.readouterr().err == ""


def test_a_keyring_that_does_not_keep_the_token_is_an_error():
    keyring.set_keyring(ForgetfulKeyring())
    with pytest.raises(StoreError, match="did not keep the session token"):
        secrets.set_token("session:x", "tok")


# -- store passwords -----------------------------------------------------------------------------


def test_store_password_without_keyring_is_refused_with_a_hint(no_keyring, capsys):
    with pytest.raises(PepsError) as caught:
        secrets.set_store_password(STORE, "s3cret-db-password")
    error = caught.value
    assert error.exit_code == 9
    assert error.message == "No OS keyring is available to keep the store password."
    assert error.hint is not None and "PEPSCTL_STORE_PASSWORD" in error.hint
    # Never written to a file instead.
    assert not (config.state_dir() / "tokens.json").exists()
    assert "s3cret-db-password" not in capsys.readouterr().err


def test_store_password_without_keyring_comes_from_the_environment_only(no_keyring, monkeypatch):
    assert secrets.get_store_password(STORE) is None
    monkeypatch.setenv(config.ENV_STORE_PASSWORD, "from-env")
    assert secrets.get_store_password(STORE) == "from-env"


def test_store_password_in_a_real_keyring_is_read_back(isolate):
    secrets.set_store_password(STORE, "s3cret-db-password")
    assert isolate.items == {("pepsctl-store", STORE): "s3cret-db-password"}
    assert secrets.get_store_password(STORE) == "s3cret-db-password"
    secrets.delete_store_password(STORE)
    assert secrets.get_store_password(STORE) is None


def test_store_password_environment_wins_over_the_keyring(isolate, monkeypatch):
    secrets.set_store_password(STORE, "in-keyring")
    monkeypatch.setenv(config.ENV_STORE_PASSWORD, "from-env")
    assert secrets.get_store_password(STORE) == "from-env"


def test_plaintext_keyring_is_refused_for_the_store_password():
    backend = PlaintextMemoryKeyring()
    keyring.set_keyring(backend)
    with pytest.raises(PepsError) as caught:
        secrets.set_store_password(STORE, "s3cret-db-password")
    error = caught.value
    assert error.exit_code == 9
    assert error.message == "The keyring backend PlaintextMemoryKeyring stores passwords in plain text."
    assert error.hint is not None
    assert "PEPSCTL_STORE_PASSWORD" in error.hint
    assert "PEPSCTL_ALLOW_PLAINTEXT_KEYRING=1" in error.hint
    assert backend.items == {}


@pytest.mark.parametrize("value", ["0", "", "no"])
def test_plaintext_keyring_stays_refused_without_an_explicit_yes(monkeypatch, value):
    backend = PlaintextMemoryKeyring()
    keyring.set_keyring(backend)
    monkeypatch.setenv(config.ENV_ALLOW_PLAINTEXT_KEYRING, value)
    with pytest.raises(PepsError):
        secrets.set_store_password(STORE, "s3cret-db-password")
    assert backend.items == {}


def test_plaintext_keyring_is_accepted_when_explicitly_allowed(monkeypatch):
    backend = PlaintextMemoryKeyring()
    keyring.set_keyring(backend)
    monkeypatch.setenv(config.ENV_ALLOW_PLAINTEXT_KEYRING, "1")
    secrets.set_store_password(STORE, "s3cret-db-password")
    assert backend.items == {("pepsctl-store", STORE): "s3cret-db-password"}
    assert secrets.get_store_password(STORE) == "s3cret-db-password"


def test_a_keyring_that_does_not_keep_the_store_password_is_an_error():
    keyring.set_keyring(ForgetfulKeyring())
    with pytest.raises(PepsError, match="did not keep the store password") as caught:
        secrets.set_store_password(STORE, "s3cret-db-password")
    assert caught.value.exit_code == 9


def test_session_tokens_may_use_a_plaintext_keyring(capsys):
    """Short-lived session tokens are not refused on a plaintext backend; only store passwords are."""
    backend = PlaintextMemoryKeyring()
    keyring.set_keyring(backend)
    secrets.set_token("session:x", "tok")
    assert backend.items == {("pepsctl", "session:x"): "tok"}


# -- PYTHON_KEYRING_BACKEND ----------------------------------------------------------------------

NAMED_BACKENDS = '''
import json
import os

from keyring.backend import KeyringBackend


class FileKeyring(KeyringBackend):
    """A backend pepsctl cannot know: it keeps everything in the JSON file $NAMED_KEYRING_FILE."""

    priority = 1

    def _load(self):
        try:
            with open(os.environ["NAMED_KEYRING_FILE"], encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return {}

    def get_password(self, service, username):
        return self._load().get(f"{service}/{username}")

    def set_password(self, service, username, password):
        data = self._load()
        data[f"{service}/{username}"] = password
        with open(os.environ["NAMED_KEYRING_FILE"], "w", encoding="utf-8") as handle:
            json.dump(data, handle)

    def delete_password(self, service, username):
        data = self._load()
        data.pop(f"{service}/{username}", None)
        with open(os.environ["NAMED_KEYRING_FILE"], "w", encoding="utf-8") as handle:
            json.dump(data, handle)


class PlaintextFileKeyring(FileKeyring):
    """The same, named as keyrings.alt names its plaintext backend."""
'''

NAMED_SCRIPT = """
from pepsctl import secrets
from pepsctl.errors import PepsError

secrets.set_token("session:x", "tok-named")
print(secrets.get_token("session:x"))
try:
    secrets.set_store_password("postgresql://pepsctl@db.example.fr:5432/peps", "s3cret-db-password")
except PepsError as error:
    print("refused", error.exit_code)
else:
    print("kept")
"""


@pytest.mark.parametrize(
    ("backend", "store_password"), [("FileKeyring", "kept"), ("PlaintextFileKeyring", "refused 9")]
)
def test_the_backend_named_by_python_keyring_backend_is_honoured(tmp_path, backend, store_password):
    (tmp_path / "named_backends.py").write_text(NAMED_BACKENDS, encoding="utf-8")
    kept = tmp_path / "named-keyring.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON_KEYRING")}
    env["PYTHON_KEYRING_BACKEND"] = f"named_backends.{backend}"
    env["NAMED_KEYRING_FILE"] = str(kept)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *filter(None, [env.get("PYTHONPATH")])])
    result = subprocess.run(
        [sys.executable, "-c", NAMED_SCRIPT], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["tok-named", store_password]
    assert result.stderr == ""  # no fallback warning: the named backend was used
    stored = json.loads(kept.read_text(encoding="utf-8"))
    assert stored["pepsctl/session:x"] == "tok-named"
    if store_password == "kept":  # read back from the named backend
        assert stored["pepsctl-store/postgresql://pepsctl@db.example.fr:5432/peps"] == "s3cret-db-password"
    else:  # a plaintext backend named in the environment is refused for the store password all the same
        assert not any(key.startswith("pepsctl-store/") for key in stored)
    assert not (Path(env[config.ENV_STATE_DIR]) / "tokens.json").exists()
