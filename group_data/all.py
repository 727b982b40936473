"""
turnout's documented defaults, loaded by pyinfra for every host.

Generated from the declarations in ``turnout/settings.py``; do not edit it by hand: change the
declaration there, then run ``python -m turnout.settings --group-data > group_data/all.py`` (a unit
test checks this file is current). Override the defaults per environment in
``group_data/<inventory name>.py`` or for one run with ``--data key=value`` (lists:
``--data tables=public.users,public.meters``). Every value is checked by
``turnout.settings.load_settings``, which also refuses keys that are neither settings nor pyinfra's
own (``ssh_*``, ``_sudo``…) unless listed in ``extra_data_keys``. No secret ever lives here: DSNs
are read on the host from the environment variables named below or from the server-side ``.env``.
"""

# --- evidence (SPEC S0.3) ---
# Where evidence directories are created: <evidence_root>/<task>/<timestamp>/.
evidence_root = "/var/lib/turnout/evidence"
# Pinned evidence timestamp (e.g. 20240102T030405Z): reuses one directory, reruns are idempotent.
evidence_timestamp = None

# --- the app and compose (S0.4) ---
# The app's directory on the host (compose file, .env).
app_root = "/srv/app"
# Where the app runs: compose (its services) or host (systemd, a venv; app_unit).
app_runs_in = "compose"
# With app_runs_in=host: where the app's Python runs (Alembic); None: app_root.
app_dir = None
# With app_runs_in=host: the systemd unit (systemctl start/stop/is-active).
app_unit = None
# With app_runs_in=host: starts the app (exit 0 once up); None: from app_unit.
app_start_command = None
# With app_runs_in=host: stops the app; None: from app_unit.
app_stop_command = None
# With app_runs_in=host: exits 0 while the app runs; None: from app_unit.
app_status_command = None
# Alembic's config, relative to the app's working directory.
alembic_ini = "alembic.ini"
# Env file passed to every compose call; None means <app_root>/.env.
env_file = None
# Compose file; None means <app_root>/docker-compose.yml.
compose_file = None
# Compose project name (docker compose -p); None lets compose derive it.
compose_project = None
# Docker client program (name on PATH or absolute path).
docker_bin = "docker"
# Python interpreter on the host that runs turnout's host-side script.
hostside_python = "python3"

# --- HTTP checks (S0.5, S1.7) ---
# Base URL of the app for health and smoke checks.
base_url = "http://127.0.0.1:18080"
# Path of the health endpoint under base_url.
health_path = "/api/v1/health"
# Timeout of one HTTP request, in seconds.
http_timeout_s = 10.0
# How many times the health check is tried before it fails.
health_retries = 5
# Check the app's health endpoint; false for an app without one (--dry says it is off).
health = True
# What the health body must also report, "key=value" items (dotted paths: a.b=1).
health_expect = ()
# Health body key (dotted) holding the Alembic revision the cutover expects; "" = none.
health_revision_key = "alembic_revision"
# HTTP status the health endpoint must answer (a redirect always fails).
health_status = 200
# Health body rule: ok (status ok), any, json:true, text:OK, checks.db.status=up,a.b=1.
health_body = "ok"

# --- smoke-core, run from the control machine (S0.6, S2.8) ---
# Run smoke-core where a runbook has it (login, core endpoints, admin, WebSocket).
smoke = True
# Login path under base_url (answers 200 with the token).
smoke_login_path = "/api/v1/auth/login"
# Login body: json, or form (OAuth2 password form, application/x-www-form-urlencoded).
smoke_login_body = "json"
# Login field holding TURNOUT_SMOKE_EMAIL (OAuth2 forms: username).
smoke_username_field = "email"
# Login field holding TURNOUT_SMOKE_PASSWORD.
smoke_password_field = "password"
# Dotted path of the token in the login answer.
smoke_token_path = "access_token"
# Authorization header scheme: <scheme> <token>.
smoke_auth_scheme = "Bearer"
# Core endpoints, "[admin:|user:|anonymous:]path=status" items (alternatives: 200|204).
smoke_endpoints = ("/api/v1/me=200",)
# Admin-only endpoint: admin gets smoke_admin_status, others are refused; "" skips it.
smoke_admin_path = "/api/v1/admin/stats"
# Status(es) the admin endpoint answers the admin.
smoke_admin_status = (200,)
# Status(es) the admin endpoint answers a request without a token.
smoke_denied_status = (401, 403)
# Status(es) it answers the normal user (TURNOUT_SMOKE_USER_EMAIL/_PASSWORD, if set).
smoke_user_status = (403,)
# WebSocket path under base_url (ws:// or wss://); "" skips the WebSocket check.
smoke_ws_path = "/api/v1/ws"
# First WebSocket message; {token} is replaced in memory by the login token.
smoke_ws_auth = '{"type": "auth", "token": "{token}"}'
# Rule the WebSocket's first answer must meet (same syntax as health_body).
smoke_ws_expect = "type=ready"
# Sample writes after a release (S2.8): POST, read back, DELETE, gone; 0 = none.
smoke_writes = 0
# Where sample writes are POSTed (smoke_item_path reads and deletes one).
smoke_write_path = "/api/v1/meters"
# Where a sample item is read back and deleted; "" = <smoke_write_path>/{id}.
smoke_item_path = ""
# JSON body of a sample write; {n} is its number.
smoke_write_body = '{"unit_id": 990001, "kind": "turnout-smoke", "slot": {n}, "value": 1.5}'
# Dotted path of the created item's id in the answer to a sample write.
smoke_write_id = "id"

# --- database validation (S1.4, S1.6) ---
# Timeout of one exact count(*) before falling back to the planner estimate, in ms.
count_timeout_ms = 3000
# Allowed row-count difference per table (applies only when both counts are exact).
allowed_row_diff = 0
# Fail when a count is only an estimate.
require_exact_counts = False
# Tables to validate, SQL names (users, public."PlayCount"); None means all tables.
tables = None
# Orphan checks, each "child_table.column->parent_table.column".
orphan_relations = ()
# Extensions that must exist in the target database.
required_extensions = ("vector",)

# --- assets (S1.5) ---
# Mirror and validate asset files; false for an app without any (--dry says it is off).
assets = True
# How many DB-referenced asset paths are sampled and checked on the target.
asset_sample_size = 50
# Seed of the asset sample, so a rerun checks the same paths.
asset_sample_seed = 0
# Prefix every asset path stored in the DB must start with (path inside the container).
asset_prefix = "/app/.data"
# Columns holding asset paths, each "table.column".
asset_path_columns = (
    "knowledge_materials.storage_path",
    "ugc_assets.storage_path",
    "gallery_items.storage_dir",
)
# Host directory mounted at asset_prefix in the container.
assets_dir = None

# --- dump, restore, mirror (S1.1-S1.3, S1.10, S1.12) ---
# Environment variable (on the host) holding the source DSN.
source_dsn_env = "SOURCE_DATABASE_URL"
# Environment variable (on the host) holding the target DSN.
target_dsn_env = "DATABASE_URL"
# The source DSN from parts (libpq keyword=VARIABLE); empty: source_dsn_env.
source_dsn_parts = ()
# The target DSN from parts (libpq keyword=VARIABLE); empty: target_dsn_env.
target_dsn_parts = ()
# pg_dump format: custom or directory.
dump_format = "custom"
# Parallel jobs for directory-format dumps and restores.
dump_jobs = 2
# Seconds between progress lines of a long dump, restore or mirror.
progress_interval_s = 10.0
# Existing dump to restore instead of dumping the source.
dump_path = None
# if_new_dump (skip a dump the marker says is restored) or always (heals drift).
restore = "if_new_dump"
# Drop and recreate schema public before restoring (staging only; refused on prod).
drop_schema = False
# rsync source of the assets (local path or remote host:path).
rsync_source = None
# Pass --delete to rsync (only when explicitly asked).
rsync_delete = False
# Remote shell for a host:path rsync source, e.g. "ssh -p 2222" (default: plain ssh).
rsync_rsh = None
# Migrate Redis too (off unless explicitly asked).
migrate_redis = False
# Fixed work directory so dumps and temporaries are kept for audit; None uses a temporary one.
work_dir = None

# --- production cutover and rollback (S0.1-S0.10) ---
# Cutover steps to run; the deploy fixes their order; a step not listed is skipped.
steps = ("freeze", "backup", "restore-assets", "restore-db", "migrate", "up", "health", "smoke")
# Compose services that write (stopped by freeze, started again by up).
freeze_services = ("api", "worker")
# The database runs in compose: dump and restore run inside its container.
db_in_compose = False
# One-shot compose services (migrations, seeding); never started after a downgrade.
migration_services = ()
# How to reach the app's database: dsn (from the host) or compose (db_service only).
db_connect = "dsn"
# The compose service of the database (with db_in_compose or db_connect=compose).
db_service = "db"
# The compose service whose image runs the app's Python (Alembic).
app_service = "api"
# Python with the app's dependencies inside app_service (runs Alembic).
app_python = "uv run python"
# Dump to restore (restore-db; destructive, needs the release flag).
src_dump = None
# Assets tarball to swap in (restore-assets; destructive, needs the release flag).
src_assets = None
# The app's SQLite file: backup copies it with the backup API instead of pg_dump.
sqlite_path = None
# Who runs the cutover, for run.json; None: $SUDO_USER or $USER of the control machine.
operator_name = None
# Inventory group of the app hosts; None: every host is an app host.
app_hosts_group = None
# Inventory group of the host that runs backup and restore-db; None: every host.
db_hosts_group = None
# Tables the app writes once up (sessions): no content digest after the cutover.
cutover_unchecked_tables = ()
# The cutover run (its timestamp) that rollback undoes; None: the latest.
rollback_run = None
# Rollback of the database: restore the baseline backup, alembic downgrade, or none.
rollback_db = "restore"

# --- schema release (S2.5-S2.7) ---
# The revision a schema release upgrades to (migrate runbook).
target_revision = "head"
# Delete the rows that block unique_gate (rehearsed on a copy first; released only).
dedupe = False
# Undo a schema release (released): -1 or <revision> (downgrade), restore (backup).
rollback = None

# --- schema release checks (S2.4, S2.10) ---
# Read-only pre-checks, name=kind:table(...): unique, duplicates, min_rows (>=N).
prechecks = (
    "meter_slots_unique=unique:meters(unit_id, kind, slot)",
    "active_admin=min_rows:users(role=admin, is_active=true)>=1",
    "no_duplicate_emails=duplicates:users(lower(email))",
)
# At most this many offending values (duplicate groups) per check in the reports.
precheck_limit = 20
# statement_timeout of the read-only pre-check and duplicates gate transaction.
precheck_timeout_ms = 5000
# Unique constraint a release adds, constraint=table(columns); empty or None: no gate.
unique_gate = "uq_meter_unit_kind_slot=meters(unit_id, kind, slot)"
# Which row of a duplicate group the dedupe keeps: the lowest or the highest id.
dedupe_keep = "lowest"

# --- pending revisions (S2.10) ---
# Go on past a pending revision that is UNCHECKED (e.g. a data migration in Python).
allow_unchecked_revisions = False

# --- SQLite to PostgreSQL copy and verification (S3.1-S3.4) ---
# Variable (host env or server-side .env) with the DSN of the PostgreSQL to move to.
pg_dsn_env = "PG_DATABASE_URL"
# Rows per batch of the copy; each batch commits with its checkpoint row.
batch_size = 1000
# Local JSON checkpoint (a cache of the target's); None: in the run's state directory.
checkpoint = None
# Tables to copy; None: every table of the SQLite file except alembic_version.
copy_tables = None
# Tables loaded at once, each on its own PostgreSQL connection.
copy_jobs = 2
# Drop secondary indexes and foreign keys for the load, recreate them after.
copy_set_aside = True
# Go on past values that cannot convert exactly; each one is counted in evidence.
lossy = False
# Discard the checkpoint and empty the copied tables first (destructive).
copy_restart = False
# Share of key ranges whose row hashes are compared; None: every row.
verify_sample = None
# At most this many differing keys named per table in the verification report.
verify_max_keys = 20
# The app's shadow-compare log table, counted by db_status when it exists.
compare_log_table = "db_compare_log"
# Boolean column of the compare log, false for a read that differed (counted apart).
compare_log_mismatch_column = "matched"
# The app's dual-write failure table, counted by db_status when it exists.
dual_write_failures_table = "dual_write_failures"

# --- SQLite to PostgreSQL phases, acceptance, rollback (S3.5-S3.7) ---
# Phase db_phase.py puts the app in: shadow, dual, cutover or rollback.
phase = None
# The app's SQLite URL as its containers see it, written to .env by the phases.
sqlite_url = "sqlite:////app/.data/app.sqlite3"
# Compose services restarted after a phase's .env change.
phase_services = ("api", "worker")
# Unique constraints or unique indexes that must exist on the target at cutover.
expected_unique = ("uq_users_email",)
# Leaving SQLite needs the copy complete, verified and the SQLite file unchanged since.
phase_require_verified_copy = True
# The rollback phase must reach a healthy app within this many seconds.
rollback_budget_s = 60.0

# --- data keys (C3) ---
# Host data keys of your own that are not settings (otherwise refused as typos).
extra_data_keys = ()

# --- release (S0.2) ---
# Release flag for destructive steps; set it for one run only: --data i_know_what_im_doing=true.
i_know_what_im_doing = False
