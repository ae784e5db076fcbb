"""The one error hierarchy of pepsctl.

Every foreseeable failure is a :class:`PepsError` subclass carrying the exit code of the
table in ``docs/exit-codes.md`` (and ``shared/spec/cli.md``) and an optional hint saying
what to do next. This module imports nothing from pepsctl and only the standard library.
"""

from __future__ import annotations


class PepsError(Exception):
    """Base of every error pepsctl reports to people as ``Error: …`` / ``Hint: …``."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, persist: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # True when the failing operation wrote only audit facts that must be kept (a refusal,
        # a failed login counted): the transaction is committed before the error is reported.
        self.persist = persist

    def __str__(self) -> str:
        return self.message


class CheckFailed(PepsError):
    """A check ran and found problems (readiness, phones check, history verify)."""

    exit_code = 1


class UsageError(PepsError):
    """Bad option, missing argument, refused confirmation."""

    exit_code = 2


class ConfirmationRefused(UsageError):
    """The user said no, or there was no terminal and no ``--yes``."""


class InvalidInput(PepsError):
    """A value or a file fails validation (phone, e-mail, SIRET, CSV…)."""

    exit_code = 3

    def __init__(
        self, message: str, *, field: str | None = None, hint: str | None = None, persist: bool = False
    ) -> None:
        super().__init__(message, hint=hint, persist=persist)
        self.field = field


class NotFound(PepsError):
    """No such establishment, account, delegation, batch, service."""

    exit_code = 4


class Conflict(PepsError):
    """Refused by a rule or a conflict: duplicate, wrong state, concurrent change."""

    exit_code = 5


class AlreadyRegistered(Conflict):
    """The SIRET is already registered."""


class LastAdministrator(Conflict):
    """The operation would leave an establishment without an active administrator."""


class AuthError(PepsError):
    """Authentication: not logged in, wrong credentials, code needed, wrong or expired."""

    exit_code = 6


class NotLoggedIn(AuthError):
    """No valid session for this store."""


class BadCredentials(AuthError):
    """Unknown identifier or wrong password: the same message for both."""


class OtpRequired(AuthError):
    """A one-time code is needed to complete the operation."""


class PhoneRequired(AuthError):
    """The account has no phone for one-time codes: one must be given (``login --phone``)."""


class PermissionDenied(PepsError):
    """Not an administrator, outside your establishment, no accepted delegation."""

    exit_code = 7


class AccountLocked(PepsError):
    """The account is locked: the password must be reset or an administrator must unlock it."""

    exit_code = 8


class StoreError(PepsError):
    """The store is unreachable, not initialised or at another schema version."""

    exit_code = 9


class StoreNotInitialised(StoreError):
    """The store has no schema yet."""


class SchemaMismatch(StoreError):
    """The store's schema version is not the one this pepsctl expects."""


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "a check ran and found problems",
    2: "usage error: bad option, missing argument, refused confirmation",
    3: "invalid input: a value or a file that fails validation",
    4: "not found: no such establishment, account, delegation, batch, service",
    5: "refused by a rule or a conflict: last administrator, duplicate, wrong state",
    6: "authentication: not logged in, wrong password, one-time code needed, wrong or expired",
    7: "permission denied: not an administrator, outside your establishment, no delegation",
    8: "account locked: the password must be changed",
    9: "store error: unreachable, not initialised, schema out of date",
}
