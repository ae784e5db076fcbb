"""Meta-tests: the layers' imports, the cold start, help with an example everywhere, no `random`,
the generated reference page, and the exit codes documented."""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import pepsctl

PACKAGE = Path(pepsctl.__file__).parent
ROOT = PACKAGE.parent
DOCS = ROOT / "docs"
HEAVY = ("sqlmodel", "sqlalchemy", "phonenumbers", "argon2", "keyring", "psycopg", "alembic")


# -- helpers ---------------------------------------------------------------------------------------


def modules(*parts: str) -> list[Path]:
    base = PACKAGE.joinpath(*parts)
    if base.is_file():
        return [base]
    return sorted(p for p in base.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(path: Path, *, module_level_only: bool = False) -> Iterator[tuple[int, str]]:
    """(line, dotted module) for every import in ``path``; ``from a import b`` yields ``a`` and ``a.b``.

    With ``module_level_only``, imports inside functions and ``if TYPE_CHECKING:`` blocks are skipped
    (those in module-level ``if``/``try``/``with`` blocks count: they run at import time).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)

    def visit(node: ast.AST) -> Iterator[tuple[int, str]]:
        for child in ast.iter_child_nodes(node):
            if module_level_only and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if module_level_only and isinstance(child, ast.If) and _is_type_checking(child):
                yield from (item for orelse in child.orelse for item in visit_one(orelse))
                continue
            yield from visit_one(child)

    def visit_one(child: ast.AST) -> Iterator[tuple[int, str]]:
        if isinstance(child, ast.Import):
            for alias in child.names:
                yield child.lineno, alias.name
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = package.split(".")
                base = base[: len(base) - (child.level - 1)]
                source = ".".join([*base, child.module] if child.module else base)
            else:
                source = child.module or ""
            yield child.lineno, source
            for alias in child.names:
                yield child.lineno, f"{source}.{alias.name}"
        yield from visit(child)

    yield from visit(tree)


def violations(paths: list[Path], banned: tuple[str, ...], *, module_level_only: bool = False) -> list[str]:
    found = []
    for path in paths:
        for line, name in imported(path, module_level_only=module_level_only):
            if any(name == b or name.startswith(b + ".") for b in banned):
                found.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    return sorted(set(found))


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEPSCTL_")}
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "100"
    return env


# -- (1) the layers --------------------------------------------------------------------------------


def test_the_import_walker_sees_what_it_must():
    """The walker itself: relative imports resolved, function-level imports told apart."""
    cli_imports = {name for _line, name in imported(PACKAGE / "cli.py")}
    assert {"typer", "pepsctl.output", "pepsctl.context", "pepsctl.commands.accounts"} <= cli_imports
    store_imports = {name for _line, name in imported(PACKAGE / "commands" / "store.py")}
    top_level = {name for _line, name in imported(PACKAGE / "commands" / "store.py", module_level_only=True)}
    assert "pepsctl.domain.schema" in store_imports
    assert "pepsctl.domain.schema" not in top_level
    assert "typer" in top_level


def test_domain_and_store_know_nothing_of_the_terminal():
    banned = (
        "typer",
        "click",
        "rich",
        "pepsctl.commands",
        "pepsctl.context",
        "pepsctl.output",
        "pepsctl.cli",
    )
    paths = modules("domain") + modules("store")
    assert len(paths) > 10
    assert violations(paths, banned) == []


def test_store_does_not_import_the_domain():
    assert violations(modules("store"), ("pepsctl.domain",)) == []


def test_commands_import_nothing_heavy_at_module_level():
    banned = ("pepsctl.store", "pepsctl.domain", "sqlmodel", "sqlalchemy", "click", "rich", *HEAVY)
    paths = modules("commands") + modules("cli.py") + modules("context.py") + modules("config.py")
    assert violations(paths, banned, module_level_only=True) == []


def test_nobody_imports_click():
    """Typer bundles its own Click: a real click.ClickException escapes as a traceback."""
    assert violations(modules(""), ("click",)) == []


@pytest.mark.parametrize("name", ["errors.py", "clock.py"])
def test_errors_and_clock_import_only_the_standard_library(name):
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for line, imported_name in imported(PACKAGE / name):
        top = imported_name.split(".")[0]
        assert top in stdlib, f"{name}:{line}: {imported_name}"


# -- (2) the cold start ----------------------------------------------------------------------------


def test_python_m_pepsctl_help_and_version():
    help_ = subprocess.run(
        [sys.executable, "-m", "pepsctl", "--help"], capture_output=True, text=True, env=clean_env(), timeout=60
    )
    assert help_.returncode == 0, help_.stderr
    assert "Usage: " in help_.stdout
    assert "Example: pepsctl init --demo" in help_.stdout
    assert help_.stderr == ""
    version = subprocess.run(
        [sys.executable, "-m", "pepsctl", "--version"], capture_output=True, text=True, env=clean_env(), timeout=60
    )
    assert version.returncode == 0, version.stderr
    from importlib.metadata import version as metadata_version

    assert version.stdout.strip() == f"pepsctl {metadata_version('pepsctl')}"


COLD_START = """
import json, runpy, sys
sys.argv = ['pepsctl', *{argv!r}]
code = None
try:
    runpy.run_module('pepsctl', run_name='__main__', alter_sys=True)
except SystemExit as exit_:
    code = exit_.code
heavy = {heavy!r}
loaded = sorted(name for name in heavy if name in sys.modules)
sys.stderr.write(json.dumps({{"code": code, "loaded": loaded}}) + "\\n")
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["accounts", "--help"],
        ["accounts", "create", "--help"],
        ["history", "--help"],
        ["store", "status", "--help"],
        ["profile", "list", "--help"],
    ],
)
def test_help_loads_no_heavy_module(argv):
    script = COLD_START.format(argv=argv, heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=clean_env(), timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report["code"] in (None, 0)
    assert report["loaded"] == []
    assert result.stdout.strip()


def test_profile_list_loads_no_store_module(tmp_path):
    """A command that does not touch the store does not pay for it either."""
    script = COLD_START.format(argv=["profile", "list"], heavy=("sqlmodel", "sqlalchemy", "psycopg", "alembic"))
    env = clean_env() | {"PEPSCTL_CONFIG_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60, cwd=ROOT
    )
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report["code"] in (None, 0), result.stderr
    assert report["loaded"] == []


# -- (3) help with an example everywhere -----------------------------------------------------------


def _walk(command, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], object]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


def all_commands() -> list[tuple[tuple[str, ...], object]]:
    import typer.main

    from pepsctl.cli import app

    return list(_walk(typer.main.get_command(app), ("pepsctl",)))


def test_the_walk_finds_the_commands():
    names = {" ".join(path) for path, _command in all_commands()}
    assert {"pepsctl", "pepsctl store status", "pepsctl history", "pepsctl history verify", "pepsctl outbox show"} <= (
        names
    )


@pytest.mark.parametrize("path", [" ".join(path) for path, _command in all_commands()])
def test_every_command_has_help_with_an_example(path):
    command = dict((" ".join(p), c) for p, c in all_commands())[path]
    help_text = command.help or ""
    assert help_text.strip(), f"{path} has no help"
    assert "Example:" in help_text, f"{path}: no 'Example:' in its help"
    examples = re.findall(r"Example:\s*(.+)", help_text)
    # The example runs this very command (groups and leaves alike).
    assert any(f"{path} " in f"{e} " for e in examples), (path, examples)


def test_help_shows_the_example():
    from typer.testing import CliRunner

    from pepsctl.cli import app

    for path, _command in all_commands():
        result = CliRunner().invoke(app, [*path[1:], "--help"])
        assert result.exit_code == 0, path
        assert "Example:" in result.stdout, path


# -- (4) secrets, never random ---------------------------------------------------------------------


def test_no_module_imports_random():
    assert violations(modules(""), ("random",)) == []


def test_no_module_uses_random_through_another_name():
    for path in modules(""):
        source = path.read_text(encoding="utf-8")
        assert not re.search(r"\b(numpy\.random|random\.(choice|randint|random|shuffle|sample))\b", source), path


# -- (5) the reference page ------------------------------------------------------------------------


def test_reference_md_matches_the_app(tmp_path):
    generated = tmp_path / "reference.md"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "typer",
            "pepsctl.cli",
            "utils",
            "docs",
            "--name",
            "pepsctl",
            "--output",
            str(generated),
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    reference = DOCS / "reference.md"
    assert reference.exists(), (
        "generate it: python -m typer pepsctl.cli utils docs --name pepsctl --output docs/reference.md"
    )
    assert reference.read_text(encoding="utf-8") == generated.read_text(encoding="utf-8"), (
        "docs/reference.md is out of date: python -m typer pepsctl.cli utils docs --name pepsctl "
        "--output docs/reference.md"
    )


# -- (6) exit codes documented ---------------------------------------------------------------------


def _documented_codes() -> dict[int, str]:
    text = (DOCS / "exit-codes.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^\|\s*(\d+)\s*\|(.*)\|\s*$", line)
        if match:
            rows[int(match.group(1))] = match.group(2)
    return rows


def test_every_exit_code_is_documented():
    from pepsctl.errors import EXIT_CODES

    documented = _documented_codes()
    assert set(EXIT_CODES) <= set(documented), sorted(set(EXIT_CODES) - set(documented))
    for code, meaning in EXIT_CODES.items():
        first_words = meaning.split(":")[0]
        assert first_words in documented[code], (code, first_words)


def test_the_internal_error_code_is_documented():
    from pepsctl.cli import INTERNAL_ERROR

    assert INTERNAL_ERROR in _documented_codes()


def _error_classes() -> list[type]:
    import pepsctl.errors as errors
    import pepsctl.secrets as secrets_module

    found = []
    for module in (errors, secrets_module):
        for _name, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, errors.PepsError) and value.__module__ == module.__name__:
                found.append(value)
    return found


def test_every_error_class_has_a_documented_code_and_is_named_in_its_row():
    from pepsctl.errors import EXIT_CODES, PepsError

    documented = _documented_codes()
    for error_class in _error_classes():
        assert error_class.exit_code in EXIT_CODES, error_class
        if error_class is PepsError:
            continue
        assert f"`{error_class.__name__}`" in documented[error_class.exit_code], error_class.__name__


def test_exit_codes_in_errors_match_the_spec_table():
    """errors.EXIT_CODES and docs agree with shared/spec/cli.md's numbering (0 to 9)."""
    from pepsctl.errors import EXIT_CODES

    assert sorted(EXIT_CODES) == list(range(10))


def test_tracebacks_never_show_local_variables():
    """Typer's pretty tracebacks would print every local (passwords, codes, tokens): they are off."""
    from pepsctl.cli import app

    assert app.pretty_exceptions_show_locals is False
    assert app.pretty_exceptions_enable is False
