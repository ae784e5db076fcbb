"""The root command: global options, error reporting, and every sub-app registered explicitly.

Nothing heavy is imported here: the domain and the store are imported inside the commands.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import pepsctl
from pepsctl import output
from pepsctl.commands import (
    accounts,
    audit,
    auth,
    batches,
    delegations,
    establishments,
    history,
    me,
    outbox,
    phones,
    profile,
    rights,
    store,
)
from pepsctl.config import ENV_DEBUG, env_flag
from pepsctl.context import AppContext
from pepsctl.errors import PepsError
from pepsctl.i18n import _

INTERNAL_ERROR = 70  # an unforeseen failure: a bug to report (EX_SOFTWARE)


class PepsGroup(TyperGroup):
    """Turns PepsError into 'Error: …' / 'Hint: …' on stderr and its exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except PepsError as error:
            if env_flag(ENV_DEBUG):
                raise
            output.error(error.message, error.hint)
            raise typer.Exit(error.exit_code) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt, EOFError):
            raise
        except BrokenPipeError:
            # The reader went away (| head): not an error of ours. Silence the final flush too.
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
        except Exception as error:
            if env_flag(ENV_DEBUG) or _is_usage_error(error):
                raise
            output.error(
                _("Unexpected failure: {kind}: {reason}").format(kind=type(error).__name__, reason=error),
                _("Run again with PEPSCTL_DEBUG=1 for details, and report it."),
            )
            raise typer.Exit(INTERNAL_ERROR) from None
        finally:
            obj = ctx.obj
            if isinstance(obj, AppContext):
                obj.dispose()


def _is_usage_error(error: Exception) -> bool:
    # Typer's own Click exceptions (bad option…) are handled by Typer: let them through.
    return type(error).__module__.startswith("typer")


app = typer.Typer(
    cls=PepsGroup,
    name="pepsctl",
    help=_(
        "Administer PEP's establishments, accounts, service rights and delegations, "
        "and get every account ready for two-factor authentication.\n\n"
        "Example: pepsctl init --demo"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: Rich-formatted help costs ~50 ms of start-up
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pepsctl {pepsctl.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    store_url: Annotated[
        str | None,
        typer.Option(
            "--store",
            envvar="PEPSCTL_STORE",
            help=_("Store URL: sqlite:///file.db, a file path, or postgresql://user@host:5432/db."),
            show_default=False,
        ),
    ] = None,
    profile_name: Annotated[
        str | None,
        typer.Option("--profile", envvar="PEPSCTL_PROFILE", help=_("Use this profile's store."), show_default=False),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help=_("More log output."))] = 0,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help=_("Show the version and exit.")),
    ] = False,
) -> None:
    """Global options."""
    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2), stream=sys.stderr, format="%(levelname)s %(message)s"
    )
    source = ctx.get_parameter_source("store_url")
    if source is not None and source.name == "ENVIRONMENT":
        store_url = None  # PEPSCTL_STORE: config.choose_store reads it and reports the source as "env"
    ctx.obj = AppContext(store_option=store_url, profile_option=profile_name, verbose=verbose)


store.register(app)
profile.register(app)
auth.register(app)
app.add_typer(establishments.app, name="establishments")
app.add_typer(accounts.app, name="accounts")
history.register(app)
phones.register(app)
batches.register(app)
me.register(app)
app.add_typer(outbox.app, name="outbox")
rights.register(app)
delegations.register(app)
audit.register(app)


# A pepsctl process is short and allocates in bursts (the rows of an audit or of an import): the
# cyclic garbage collector's default pace (a pass every 700 allocations, whole-heap passes on top)
# cost ≈ 0.25 s of a 2.4 s audit over 300,000 accounts. Reference counting frees almost everything;
# the collector still runs, every 50,000 allocations.
GC_THRESHOLD = (50_000, 20, 100)


def main() -> None:
    import gc

    gc.set_threshold(*GC_THRESHOLD)
    app()
