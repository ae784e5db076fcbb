"""profile list | add | use | remove: named stores kept in profiles.toml."""

from __future__ import annotations

from typing import Annotated

import typer

from pepsctl import config, output
from pepsctl.commands._options import FormatOpt, fmt, interactive, sub_app
from pepsctl.errors import InvalidInput, UsageError
from pepsctl.i18n import _

app = sub_app(_("Named stores (local SQLite files or shared PostgreSQL servers).\n\nExample: pepsctl profile list"))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="profile")


@app.command("list")
def list_profiles(format: FormatOpt = None) -> None:
    """List the profiles; the active one is marked.

    Example: pepsctl profile list
    """
    profiles = config.ProfileFile.load()
    rows = [
        {"name": p.name, "store": p.store, "active": p.name == profiles.active, "outbox": p.outbox}
        for p in sorted(profiles.profiles.values(), key=lambda p: p.name)
    ]
    output.render(rows, fmt(format), columns=["name", "store", "active", "outbox"], title=_("Profiles"))


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help=_("Profile name."))],
    store: Annotated[str, typer.Option("--store", help=_("Store URL or SQLite file path."))],
    ask_password: Annotated[
        bool,
        typer.Option("--ask-password", help=_("Ask for the store's password and keep it in the OS keyring.")),
    ] = False,
    outbox: Annotated[
        bool, typer.Option("--outbox", help=_("Allow the built-in outbox gateway on this remote store."))
    ] = False,
    use: Annotated[bool, typer.Option("--use", help=_("Make it the active profile."))] = False,
) -> None:
    """Add (or replace) a profile. A password never goes into the file: use --ask-password.

    Example: pepsctl profile add cdg --store postgresql://pepsctl@db.example.fr:5432/peps --ask-password
    """
    from pepsctl import secrets
    from pepsctl.store.engine import parse_store_url

    config.validate_profile_name(name)
    parsed = parse_store_url(store)
    if parsed.has_password:
        raise InvalidInput(
            _("The store URL contains a password: it would be written to disk."),
            field="store",
            hint=_("Remove it from the URL and use --ask-password (or PEPSCTL_STORE_PASSWORD)."),
        )
    if ask_password:
        if parsed.dialect != "postgresql":
            raise UsageError(_("Only a PostgreSQL store has a password."))
        if not interactive():
            raise UsageError(_("--ask-password needs a terminal."), hint=_("Set PEPSCTL_STORE_PASSWORD instead."))
        password = typer.prompt(_("Password for {store}").format(store=parsed.display), hide_input=True, err=True)
        secrets.set_store_password(parsed.display, password)
    profiles = config.ProfileFile.load()
    stored = str(parsed.sqlite_path) if parsed.dialect == "sqlite" else parsed.display
    profiles.profiles[name] = config.Profile(name=name, store=stored, outbox=outbox)
    if use or profiles.active is None:
        profiles.active = name
    profiles.save()
    output.success(_("Profile {name} saved ({store}).").format(name=name, store=stored))


@app.command("use")
def use(name: Annotated[str, typer.Argument(help=_("Profile name."))]) -> None:
    """Make a profile the active one.

    Example: pepsctl profile use cdg
    """
    profiles = config.ProfileFile.load()
    profiles.get(name)
    profiles.active = name
    profiles.save()
    output.success(_("Now using profile {name}.").format(name=name))


@app.command("remove")
def remove(name: Annotated[str, typer.Argument(help=_("Profile name."))]) -> None:
    """Remove a profile and its keyring password.

    Example: pepsctl profile remove cdg
    """
    from pepsctl import secrets
    from pepsctl.store.engine import parse_store_url

    profiles = config.ProfileFile.load()
    profile = profiles.get(name)
    del profiles.profiles[name]
    if profiles.active == name:
        profiles.active = None
    profiles.save()
    parsed = parse_store_url(profile.store)
    if parsed.dialect == "postgresql":
        secrets.delete_store_password(parsed.display)
    output.success(_("Profile {name} removed.").format(name=name))
