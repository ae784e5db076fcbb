"""The line-by-line map of ../shared/spec/security.md to the tests that prove each requirement.

``SPEC_MAP`` pairs every requirement bullet of the spec, copied verbatim (a vendored copy, so this file
works in a checkout without ../shared), with the pytest node ids (``file::test`` or ``file::Class::test``,
parametrised ids without their ``[..]``) of the tests that assert it — every sub-claim of a bullet has
a test of its own in the list. Store tests among them run on SQLite and PostgreSQL (the ``store_url``
fixture). The tests here check that every bullet has tests, that every node id exists, and that the
spec, when present, still has exactly these bullets: a changed spec fails until the map follows it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]  # the repository: tests/security/test_spec_map.py
SPEC = Path(__file__).parents[3] / "shared" / "spec" / "security.md"

SPEC_MAP: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "6 ASCII digits from `secrets`, leading zeros kept; valid exactly 300 s from issue (accepted at 299 s, "
        "refused at 300 s).",
        (
            "tests/domain/test_otp.py::test_a_code_is_six_ascii_digits_with_leading_zeros_kept",
            "tests/domain/test_otp.py::test_new_codes_are_always_six_ascii_digits",
            "tests/security/test_secrets_scan.py::test_the_package_never_uses_the_random_module",
            "tests/domain/test_otp.py::test_a_code_is_accepted_at_299_seconds",
            "tests/domain/test_otp.py::test_a_code_is_refused_at_300_seconds",
            "tests/commands/test_two_factor.py::test_a_login_code_lives_exactly_300_seconds",
        ),
    ),
    (
        "Stored only as a keyed hash (HMAC with a per-store secret), compared with `hmac.compare_digest`; never "
        "logged, never in history, reports or error messages.",
        (
            "tests/domain/test_otp.py::test_a_code_is_stored_only_as_a_keyed_hash",
            "tests/domain/test_otp.py::test_a_code_is_compared_with_hmac_compare_digest",
            "tests/domain/test_otp.py::test_a_code_is_refused_at_300_seconds",
            "tests/security/test_secrets_scan.py::test_the_store_and_its_audit_trail_hold_no_known_secret",
            "tests/security/test_secrets_scan.py::test_output_logs_and_files_hold_no_known_secret_and_files_are_private",
            "tests/commands/test_recovery.py::test_no_secret_appears_in_the_history_the_output_or_the_store",
        ),
    ),
    (
        "Bound to one account, one purpose (login, registration, a given sensitive action on a given target) and "
        "one challenge; consumed with one conditional UPDATE so two concurrent uses give exactly one success; a "
        "resend invalidates earlier codes of the same purpose.",
        (
            "tests/domain/test_otp.py::test_a_code_is_bound_to_its_account",
            "tests/domain/test_otp.py::test_a_code_is_bound_to_its_purpose",
            "tests/commands/test_two_factor.py::test_registration_needs_a_code_and_writes_nothing_without_it",
            "tests/commands/test_two_factor.py::test_a_step_up_code_is_bound_to_the_action_it_was_sent_for",
            "tests/commands/test_two_factor.py::test_a_step_up_code_is_bound_to_the_target_it_was_sent_for",
            "tests/commands/test_two_factor.py::test_a_step_up_code_is_bound_to_its_session",
            "tests/commands/test_two_factor.py::test_a_phone_change_refuses_the_old_numbers_code_for_the_new_number",
            "tests/domain/test_otp.py::test_a_code_is_single_use",
            "tests/store/test_otp_concurrency.py::test_one_code_used_twice_in_parallel_succeeds_once",
            "tests/store/test_otp_concurrency.py::test_one_code_used_twice_after_both_read_it_as_open_succeeds_once",
            "tests/domain/test_otp.py::test_a_resend_invalidates_the_earlier_code",
            "tests/commands/test_two_factor.py::test_a_new_code_replaces_the_one_before",
        ),
    ),
    (
        "Only `[0-9]{6}` in ASCII is accepted: full-width or other Unicode digits are refused, never crash.",
        (
            "tests/domain/test_otp.py::test_a_malformed_code_is_refused_without_consuming_anything",
            "tests/domain/test_validation.py::test_otp_format_invalid",
            "tests/domain/test_validation.py::test_property_validate_otp_format_raises_only_invalid_input",
            "tests/security/test_hostile_input.py::test_the_real_code_in_other_digits_is_refused_then_the_ascii_code_works",
            "tests/security/test_hostile_input.py::test_unicode_digit_codes_are_never_accepted_by_the_validator",
            "tests/commands/test_two_factor.py::test_a_malformed_login_code_is_refused_and_consumes_nothing",
        ),
    ),
    (
        "Sending is rate-limited (e.g. at most 5 codes per account per 15 minutes): each SMS or call costs money.",
        (
            "tests/domain/test_otp.py::test_the_sixth_code_within_15_minutes_is_refused",
            "tests/domain/test_otp.py::test_codes_can_be_sent_again_15_minutes_later",
            "tests/commands/test_two_factor.py::test_at_most_five_codes_in_15_minutes",
        ),
    ),
    (
        "The outbox gateway (local default) blanks a code once it is used or expired. A remote store never uses "
        "the outbox unless configured to.",
        (
            "tests/commands/test_outbox.py::test_a_used_code_is_blanked",
            "tests/commands/test_outbox.py::test_an_expired_code_is_blanked",
            "tests/commands/test_outbox.py::test_blanking_happens_in_the_store",
            "tests/domain/test_otp.py::test_the_outbox_copy_is_blanked_once_expired",
            "tests/security/test_secrets_scan.py::test_the_outbox_blanks_every_code_once_used_or_expired",
            "tests/commands/test_outbox.py::test_outbox_on_postgresql_needs_an_explicit_opt_in",
            "tests/commands/test_outbox.py::test_registering_on_postgresql_without_a_gateway_writes_nothing",
            "tests/commands/test_outbox.py::test_outbox_opt_in_is_explicit",
        ),
    ),
    (
        "Authenticator-app TOTP (pyotp): the secret is stored encrypted or at least never displayed again after "
        "enrolment; each time step is accepted once (remember the last accepted step).",
        (
            "tests/security/test_secrets_scan.py::test_the_totp_secret_is_shown_once_then_never_again",
            "tests/commands/test_two_factor.py::test_enrolment_shows_the_secret_once_and_activates_only_with_a_valid_code",
            "tests/commands/test_two_factor.py::test_login_with_totp_accepts_each_time_step_once",
        ),
    ),
    (
        "5 consecutive failures (password or code) lock the account; the counter is updated atomically in the "
        "store (`UPDATE … SET failed = failed + 1 … RETURNING`), counted across resends and processes.",
        (
            "tests/commands/test_auth.py::test_five_consecutive_failures_lock_the_account",
            "tests/commands/test_recovery.py::test_the_fifth_failure_locks_whether_passwords_or_codes",
            "tests/commands/test_two_factor.py::test_a_wrong_totp_code_counts_toward_the_lockout",
            "tests/commands/test_recovery.py::test_failures_are_counted_across_resends",
            "tests/store/test_otp_concurrency.py::test_ten_wrong_codes_in_parallel_are_all_counted_and_lock_once",
        ),
    ),
    (
        "A locked account refuses even the right password and code, on every pathway (login options, environment "
        "variables, step-up, password forgot); the output is the same whether the password given was right or "
        "wrong.",
        (
            "tests/commands/test_auth.py::test_a_locked_account_refuses_the_right_password_with_the_same_output",
            "tests/commands/test_recovery.py::test_a_locked_account_refuses_the_right_password_and_code_like_a_wrong_password",
            "tests/commands/test_recovery.py::test_a_locked_account_refuses_the_right_authenticator_code_like_a_wrong_one",
            "tests/commands/test_recovery.py::test_a_locked_account_cannot_pass_a_step_up_even_with_the_right_code",
            "tests/commands/test_recovery.py::test_password_forgot_on_a_locked_account_answers_the_same_and_unlocks_nothing_by_itself",
        ),
    ),
    (
        "No automatic unlock with time. Unlock by password reset through an e-mailed code, or by an administrator "
        "of the same establishment (the user then sets a new password). Both are audited, and the user is notified "
        "by e-mail.",
        (
            "tests/commands/test_recovery.py::test_a_locked_account_refuses_the_right_password_and_code_like_a_wrong_password",
            "tests/commands/test_recovery.py::test_a_password_reset_sets_the_password_and_ends_the_lock",
            "tests/commands/test_recovery.py::test_a_reset_code_is_accepted_until_24_hours",
            "tests/commands/test_recovery.py::test_only_an_administrator_of_the_same_establishment_unlocks",
        ),
    ),
    (
        "An unknown identifier and a wrong password give the same message, exit code and (with a dummy hash "
        "verification) similar timing.",
        (
            "tests/commands/test_auth.py::test_login_with_an_unknown_identifier_or_a_wrong_password_answers_the_same",
            "tests/commands/test_auth.py::test_an_unknown_identifier_costs_the_same_argon2_verification_as_a_wrong_password",
            "tests/commands/test_auth.py::test_an_unknown_identifier_and_a_wrong_password_take_similar_time",
        ),
    ),
    (
        "Argon2id (argon2-cffi defaults or stronger); rehash when parameters change.",
        (
            "tests/commands/test_auth.py::test_the_production_hasher_is_argon2id_at_least_as_strong_as_the_library_defaults",
            "tests/commands/test_auth.py::test_a_hash_made_with_other_parameters_is_remade_at_the_next_login",
        ),
    ),
    (
        "At least 12 characters, at most 128, no truncation, no composition rules; refuse a shipped blocklist of "
        'common passwords and context words (the person\'s names, the SIRET, "peps", fund names).',
        (
            "tests/domain/test_validation.py::test_password_length_limits",
            "tests/domain/test_validation.py::test_password_length_counts_characters_not_bytes",
            "tests/commands/test_auth.py::test_password_set_accepts_12_characters_and_128",
            "tests/commands/test_auth.py::test_a_128_character_password_is_hashed_whole_without_truncation",
            "tests/domain/test_validation.py::test_no_composition_rules",
            "tests/domain/test_validation.py::test_common_passwords_are_refused",
            "tests/domain/test_validation.py::test_blocklist_is_shipped_loaded_once_and_large_enough",
            "tests/domain/test_validation.py::test_password_containing_a_context_word_is_refused",
            "tests/commands/test_auth.py::test_password_set_refuses_a_weak_password",
        ),
    ),
    (
        "Activation and reset codes are random, single use and short-lived (activation 15 days as on the platform, "
        "reset 24 hours). An administrator starts a reset but never sees or sets the password.",
        (
            "tests/commands/test_auth.py::test_password_set_with_a_used_code",
            "tests/commands/test_auth.py::test_password_set_with_an_expired_code",
            "tests/commands/test_auth.py::test_password_set_with_a_replaced_code",
            "tests/commands/test_accounts.py::test_create_emails_an_activation_code_valid_15_days",
            "tests/commands/test_establishments.py::test_activation_code_is_accepted_15_days_minus_one_second_after_registration",
            "tests/commands/test_establishments.py::test_activation_code_is_refused_15_days_after_registration",
            "tests/commands/test_recovery.py::test_a_reset_code_is_accepted_until_24_hours",
            "tests/commands/test_recovery.py::test_a_reset_code_is_refused_at_24_hours",
            "tests/security/test_secrets_scan.py::test_the_package_never_uses_the_random_module",
            "tests/commands/test_recovery.py::test_only_an_administrator_of_the_same_establishment_unlocks",
            "tests/commands/test_recovery.py::test_unlock_ends_the_sessions_and_workstation_trusts_left_open_in_the_store",
        ),
    ),
    (
        "Changing one's password needs the current one and a code; it ends every other session and workstation "
        "trust of the account.",
        (
            "tests/commands/test_recovery.py::test_password_change_refuses_a_wrong_current_password_and_counts_it",
            "tests/commands/test_two_factor.py::test_changing_ones_password_needs_a_code",
            "tests/commands/test_recovery.py::test_password_change_ends_every_other_session_and_workstation_trust",
        ),
    ),
    (
        "Session and trust tokens: `secrets.token_urlsafe(32)`, only their hashes in the store, the tokens "
        "themselves in the OS keyring.",
        (
            "tests/commands/test_auth.py::test_login_prints_to_stderr_and_keeps_only_the_token_hash_in_the_store",
            "tests/security/test_secrets_scan.py::test_the_store_and_its_audit_trail_hold_no_known_secret",
            "tests/test_secrets.py::test_tokens_go_to_the_keyring_when_there_is_one",
        ),
    ),
    (
        "Trust lasts 7 days from the code's verification, not sliding. Sessions have a documented idle and "
        "absolute lifetime (e.g. 30 minutes idle, 12 hours absolute).",
        (
            "tests/commands/test_two_factor.py::test_workstation_trust_lasts_7_days_from_the_code_not_sliding",
            "tests/commands/test_auth.py::test_a_session_ends_after_30_idle_minutes",
            "tests/commands/test_auth.py::test_a_session_ends_after_12_hours_even_with_activity",
        ),
    ),
    (
        "Logout, password change, phone change, unlock and deletion revoke sessions server-side.",
        (
            "tests/commands/test_auth.py::test_logout_revokes_the_session_in_the_store",
            "tests/commands/test_recovery.py::test_password_change_ends_every_other_session_and_workstation_trust",
            "tests/commands/test_two_factor.py::test_changing_ones_own_phone_needs_a_code_to_each_number",
            "tests/commands/test_phones.py::test_a_changed_phone_ends_the_agents_sessions",
            "tests/commands/test_recovery.py::test_unlock_ends_the_sessions_and_workstation_trusts_left_open_in_the_store",
            "tests/commands/test_accounts.py::test_a_deleted_account_sessions_stop_working",
        ),
    ),
    (
        "No keyring backend (headless CI): keyring raises `NoKeyringError` even on read. Catch it: session and "
        "trust tokens (short-lived) then fall back to a 0600 file in the user state directory, with a one-line "
        "warning; a remote store's password falls back to `PEPSCTL_STORE_PASSWORD` only. Refuse a plaintext "
        "keyring backend for the store password unless explicitly allowed; after storing a secret, read it back to "
        "prove it was kept. Any keyring backend that `PYTHON_KEYRING_BACKEND` names is honoured.",
        (
            "tests/test_secrets.py::test_without_keyring_init_and_login_work_with_a_0600_token_file",
            "tests/test_secrets.py::test_token_fallback_file_in_process",
            "tests/security/test_secrets_scan.py::test_the_token_fallback_file_is_private_and_holds_only_tokens",
            "tests/test_secrets.py::test_store_password_without_keyring_is_refused_with_a_hint",
            "tests/test_secrets.py::test_store_password_without_keyring_comes_from_the_environment_only",
            "tests/test_secrets.py::test_plaintext_keyring_is_refused_for_the_store_password",
            "tests/test_secrets.py::test_plaintext_keyring_stays_refused_without_an_explicit_yes",
            "tests/test_secrets.py::test_plaintext_keyring_is_accepted_when_explicitly_allowed",
            "tests/test_secrets.py::test_a_keyring_that_does_not_keep_the_store_password_is_an_error",
            "tests/test_secrets.py::test_a_keyring_that_does_not_keep_the_token_is_an_error",
            "tests/test_secrets.py::test_store_password_in_a_real_keyring_is_read_back",
            "tests/test_secrets.py::test_the_backend_named_by_python_keyring_backend_is_honoured",
        ),
    ),
    (
        "One gate in the domain layer decides every operation: actor, establishment, profile, accepted delegation "
        "and its scope. It fails closed.",
        (
            "tests/security/test_isolation.py::test_isolation_matrix",
            "tests/security/test_isolation.py::test_the_table_needs_a_session_everywhere_but_the_documented_exceptions",
            "tests/commands/test_gate.py::test_the_gate_explains_each_decision_with_its_rule",
            "tests/commands/test_gate.py::test_an_unknown_action_exits_3",
            "tests/commands/test_delegations.py::test_the_gate_allows_the_delegated_right_and_nothing_beyond_it",
        ),
    ),
    (
        "An administrator of A acting on anything of B without an accepted delegation gets exit 7, and learns "
        'nothing about B (same answer for "exists elsewhere" and "does not exist").',
        (
            "tests/commands/test_accounts.py::test_show_an_account_of_another_establishment_exits_7_and_reveals_nothing",
            "tests/commands/test_accounts.py::test_show_an_unknown_account_is_refused_like_another_establishments",
            "tests/commands/test_accounts.py::test_create_in_another_establishment_is_denied_whether_or_not_it_is_registered",
            "tests/commands/test_establishments.py::test_show_of_another_or_an_unregistered_establishment_gives_the_same_refusal",
            "tests/commands/test_gate.py::test_a_target_that_does_not_exist_is_explained_like_one_of_another_establishment",
            "tests/commands/test_delegations.py::test_granting_without_a_delegation_looks_the_same_as_an_unregistered_siret",
            "tests/security/test_isolation.py::test_isolation_matrix",
        ),
    ),
    (
        "A user profile cannot run administrator operations. Nobody accepts their own delegation request. Revoking "
        "a delegation, a right or a profile takes effect on the very next command.",
        (
            "tests/commands/test_accounts.py::test_a_user_cannot_run_administrator_operations",
            "tests/commands/test_delegations.py::test_the_requester_side_cannot_decide_its_own_request",
            "tests/commands/test_delegations.py::test_revoke_takes_effect_on_the_very_next_command",
            "tests/commands/test_gate.py::test_a_revoked_right_is_refused_on_the_very_next_decision",
            "tests/commands/test_accounts.py::test_promote_a_user_then_demote_the_first_administrator",
        ),
    ),
    (
        "The last active administrator of an establishment cannot be deleted, demoted, unlocked-away or left to "
        "expire — checked and written in one transaction that locks the establishment (`BEGIN IMMEDIATE` on "
        "SQLite, `SELECT … FOR UPDATE` on PostgreSQL).",
        (
            "tests/commands/test_accounts.py::test_the_last_administrator_cannot_be_deleted",
            "tests/commands/test_accounts.py::test_demoting_the_last_active_administrator_exits_5_and_changes_nothing",
            "tests/commands/test_accounts.py::test_an_administrator_who_cannot_act_does_not_count_as_another_administrator",
            "tests/commands/test_accounts_bulk.py::test_demoting_every_administrator_in_one_file_is_rejected",
            "tests/commands/test_accounts_bulk.py::test_undo_of_a_promotion_cannot_leave_the_establishment_without_an_administrator",
            "tests/commands/test_accounts_bulk.py::test_undo_of_a_renew_batch_cannot_leave_the_last_administrator_expired",
            "tests/store/test_concurrency.py::test_two_administrators_removing_each_other_at_once_leave_one",
            "tests/store/test_concurrency.py::TestInsideTheTransaction::test_the_guard_locks_the_establishment",
            "tests/store/test_engine.py::test_sqlite_transactions_begin_immediate",
        ),
    ),
    (
        "A CSV cannot change fields that its command does not own (a phones file cannot change profiles or rights).",
        (
            "tests/commands/test_phones.py::test_a_phones_file_cannot_change_other_fields",
            "tests/commands/test_accounts_bulk.py::test_columns_the_command_does_not_own_are_ignored_with_a_warning",
            "tests/domain/test_csvio.py::test_columns_the_command_does_not_own_are_ignored_with_a_warning",
        ),
    ),
    (
        "Every mutation and every authentication event (success, failure, lock, unlock, code "
        "sent/used/expired/replayed, permission denied, rejected import) appends one event: UTC timestamp, actor, "
        "establishment, delegation used, action, target, batch, before/after with phones masked.",
        (
            "tests/commands/test_auth.py::test_every_attempt_is_in_the_history_without_any_password",
            "tests/commands/test_recovery.py::test_only_an_administrator_of_the_same_establishment_unlocks",
            "tests/domain/test_otp.py::test_a_code_is_accepted_at_299_seconds",
            "tests/domain/test_otp.py::test_a_code_is_refused_at_300_seconds",
            "tests/domain/test_otp.py::test_a_code_is_single_use",
            "tests/commands/test_establishments.py::test_every_mutation_is_in_the_history_and_the_chain_verifies",
            "tests/commands/test_rights.py::test_every_grant_and_revoke_lands_in_the_history",
            "tests/commands/test_phones.py::test_one_invalid_row_among_a_thousand_writes_nothing",
            "tests/domain/test_history.py::test_history_json_keys",
            "tests/commands/test_delegations.py::test_history_tells_the_story_on_both_sides",
            "tests/commands/test_phones.py::test_the_history_has_one_masked_event_per_changed_row_with_the_batch",
            "tests/domain/test_history.py::test_phones_are_masked_in_the_history",
        ),
    ),
    (
        "Append-only and hash-chained; `history verify` detects an edited, deleted or reordered event (exit 1) and "
        "names the first bad one.",
        (
            "tests/domain/test_history.py::test_every_event_is_chained",
            "tests/domain/test_history.py::test_an_edited_event_is_named",
            "tests/domain/test_history.py::test_a_deleted_middle_event_is_named",
            "tests/domain/test_history.py::test_reordered_events_are_named",
            "tests/domain/test_history.py::test_the_deleted_newest_event_is_detected",
            "tests/store/test_retention.py::test_the_audit_table_refuses_update_and_delete",
            "tests/store/test_retention.py::test_postgresql_refuses_truncate_of_the_audit_table",
        ),
    ),
    (
        "Retention is documented (12 months by default) with a purge command that keeps the chain verifiable.",
        (
            "tests/store/test_retention.py::test_purge_deletes_what_is_older_than_the_period_and_the_chain_still_verifies",
            "tests/store/test_retention.py::test_a_purged_chain_still_detects_tampering",
            "tests/store/test_retention.py::test_purge_asks_for_confirmation_and_checks_the_period",
        ),
    ),
    (
        "No NIR is ever stored: a CSV column that looks like one is refused or dropped with a warning.",
        (
            "tests/domain/test_csvio.py::test_a_nir_header_drops_the_column_with_a_warning",
            "tests/domain/test_csvio.py::test_a_column_whose_values_look_like_nirs_is_dropped_with_a_warning",
            "tests/commands/test_accounts_bulk.py::test_a_nir_column_is_dropped_with_a_warning_and_never_stored",
        ),
    ),
    (
        "New store file 0600, its directory 0700, report files 0600.",
        (
            "tests/security/test_secrets_scan.py::test_a_new_sqlite_store_is_a_0600_file_in_a_0700_directory",
            "tests/store/test_engine.py::test_init_creates_a_private_file_in_a_private_directory",
            "tests/store/test_engine.py::test_init_file_is_private_whatever_the_umask",
            "tests/security/test_hostile_input.py::test_a_report_of_hostile_rows_is_private_and_spreadsheet_safe",
            "tests/test_output.py::test_write_csv_creates_a_private_file_with_a_bom",
        ),
    ),
    (
        "Phones are masked in lists and history (`+33 6 •• •• •• 78`); full numbers only in `show`, templates and "
        "exports.",
        (
            "tests/commands/test_accounts.py::test_list_masks_phones_and_show_gives_them_in_full",
            "tests/domain/test_history.py::test_phones_are_masked_in_the_history",
            "tests/commands/test_accounts.py::test_update_history_records_before_and_after_with_phones_masked",
            "tests/commands/test_phones.py::test_a_template_round_trips_with_zero_changes",
            "tests/commands/test_accounts_bulk.py::test_export_is_a_spreadsheet_safe_csv_file",
        ),
    ),
    (
        "User data is shown literally: no Rich markup or terminal escape sequences from names or functions reach "
        "the terminal.",
        (
            "tests/security/test_hostile_input.py::test_markup_and_escape_sequences_are_refused_or_shown_literally",
            "tests/test_output.py::test_table_prints_markup_literally",
            "tests/test_output.py::test_table_never_emits_escape_sequences_from_data",
        ),
    ),
    (
        "No traceback for foreseeable failures; `pretty_exceptions_show_locals` off; a traceback only with "
        "`PEPSCTL_DEBUG=1`.",
        (
            "tests/commands/test_store_profile.py::test_unreachable_postgresql_exits_9_in_one_or_two_lines",
            "tests/security/test_hostile_input.py::test_fixed_hostile_values_on_both_stores",
            "tests/test_meta.py::test_tracebacks_never_show_local_variables",
            "tests/commands/test_store_profile.py::test_debug_shows_the_traceback",
        ),
    ),
    (
        "CSV export neutralises cells starting with `=`, `+`, `-`, `@`, tab, CR or LF (leading `'`), and import "
        "strips that one quote again, so a template round-trips with zero changes.",
        (
            "tests/test_output.py::test_csv_neutralises_each_dangerous_start",
            "tests/domain/test_csvio.py::test_the_one_quote_of_a_neutralised_cell_is_stripped",
            "tests/commands/test_phones.py::test_a_template_round_trips_with_zero_changes",
            "tests/security/test_hostile_input.py::test_exports_neutralise_formulas_and_import_back_with_zero_changes",
        ),
    ),
    (
        "A file of 1,000 valid rows and 1 invalid row writes nothing (exit 3) unless `--skip-invalid`.",
        (
            "tests/commands/test_phones.py::test_one_invalid_row_among_a_thousand_writes_nothing",
            "tests/commands/test_phones.py::test_skip_invalid_applies_the_valid_rows_and_records_a_batch_with_their_counts",
            "tests/commands/test_accounts_bulk.py::test_one_invalid_row_among_a_thousand_writes_nothing_then_skip_invalid_applies_the_rest",
        ),
    ),
    (
        "Killing the process mid-import leaves the store as it was. Two imports at once on one SQLite file or "
        "PostgreSQL database both complete (one waits; SQLite busy timeout ≥ 5 s and `BEGIN IMMEDIATE`; PostgreSQL "
        "retries serialization failures a bounded number of times), and each batch is applied whole.",
        (
            "tests/store/test_bulk_concurrency.py::test_killing_an_import_midway_leaves_the_store_as_it_was",
            "tests/security/test_processes.py::test_killing_a_large_phones_import_leaves_the_store_as_it_was",
            "tests/store/test_bulk_concurrency.py::test_two_imports_of_disjoint_files_both_complete",
            "tests/store/test_bulk_concurrency.py::test_two_imports_of_overlapping_files_are_each_applied_whole",
            "tests/store/test_bulk_concurrency.py::TestInsideTheTransaction::test_overlapping_files",
            "tests/store/test_engine.py::test_sqlite_connection_pragmas",
            "tests/store/test_engine.py::test_sqlite_transactions_begin_immediate",
            "tests/store/test_engine.py::test_retries_serialization_failures",
            "tests/store/test_engine.py::test_a_conflict_that_persists_is_exit_9_after_a_bounded_number_of_attempts",
            "tests/store/test_engine.py::test_a_real_deadlock_between_two_transactions_is_replayed",
        ),
    ),
    (
        "The same content imported twice is a no-op the second time; `batches undo` restores the exact previous "
        "values and is itself audited; it refuses (or needs `--force`) when a row changed after the batch.",
        (
            "tests/commands/test_phones.py::test_the_same_file_twice_changes_nothing_the_second_time",
            "tests/commands/test_batches.py::test_undo_restores_the_exact_previous_phones",
            "tests/commands/test_batches.py::test_undo_is_audited_with_phones_masked",
            "tests/commands/test_batches.py::test_undo_is_refused_when_a_row_changed_after_the_batch",
            "tests/commands/test_batches.py::test_undo_with_force_restores_anyway",
        ),
    ),
    (
        "SQLite foreign keys on for every connection.",
        (
            "tests/store/test_engine.py::test_sqlite_foreign_keys_are_enforced",
            "tests/store/test_engine.py::test_sqlite_pragmas_on_every_pooled_connection",
        ),
    ),
)

BULLETS = [bullet for bullet, _nodes in SPEC_MAP]


def spec_bullets(text: str) -> list[str]:
    """The requirement bullets of the spec: every line that starts with "- "."""
    return [line[2:] for line in text.splitlines() if line.startswith("- ")]


def test_every_bullet_is_mapped_to_at_least_one_test():
    assert len(BULLETS) == len(set(BULLETS)), "a bullet is listed twice"
    unmapped = [bullet for bullet, nodes in SPEC_MAP if not nodes]
    assert unmapped == []
    for bullet, nodes in SPEC_MAP:
        assert len(nodes) == len(set(nodes)), f"a test is listed twice for: {bullet}"


def _resolve(node: str) -> object:
    path, *names = node.split("::")
    assert path.startswith("tests/") and path.endswith(".py") and 1 <= len(names) <= 2, node
    assert "[" not in node, f"{node}: give the test without its parameters"
    assert (ROOT / path).is_file(), f"{node}: no file {path}"
    found: object = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    for name in names:
        assert hasattr(found, name), f"{node}: {name} not found"
        found = getattr(found, name)
    return found


@pytest.mark.parametrize("node", sorted({node for _bullet, nodes in SPEC_MAP for node in nodes}))
def test_every_mapped_test_exists(node):
    found = _resolve(node)
    assert callable(found) and node.rsplit("::", 1)[1].startswith("test_"), node
    if "::Test" in node:
        assert node.split("::")[1].startswith("Test"), node


def test_the_spec_has_exactly_the_vendored_bullets():
    if not SPEC.is_file():
        pytest.skip(f"{SPEC} is absent (a checkout without ../shared)")
    assert spec_bullets(SPEC.read_text(encoding="utf-8")) == BULLETS
