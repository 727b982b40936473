"""Test deploy: the schema release checks with parameters from ``--data chk_*=…``: the read-only
pre-checks (``chk_prechecks``, default the setting's default), the duplicates gate of
``uq_meter_unit_kind_slot`` and the dedupe (``chk_dedupe=true``; destructive, so released with
``i_know_what_im_doing``; ``chk_dump`` restores its copy from that dump). ``chk_steps`` chooses
among ``prechecks,gate,dedupe``. Run by tests/integration/test_prechecks.py; the DSN lives in the
env file ``chk_env_file`` on the host."""

from pyinfra import host

from turnout.database import Database
from turnout.hostside.checks import parse_gate
from turnout.operations import checks
from turnout.settings import DEFAULTS

data = host.data
database = Database(data.get("chk_dsn_env") or "CHK_URL", data.get("chk_env_file"))
outputs = data.get("chk_outputs")
steps = str(data.get("chk_steps") or "prechecks,gate").split(",")
gate = parse_gate(DEFAULTS["unique_gate"])

if "dedupe" in steps:
    checks.dedupe(
        name="Dedupe meters",
        database=database,
        table=gate["table"],
        columns=gate["columns"],
        constraint=gate["constraint"],
        keep=data.get("chk_keep") or "lowest",
        dump=data.get("chk_dump") or None,
        record=f"{outputs}/dedupe.json",
        log_path=f"{outputs}/dedupe.log",
    )

if "prechecks" in steps:
    given = data.get("chk_prechecks")
    checks.prechecks(
        name="Pre-checks",
        database=database,
        checks=tuple(given.split(";")) if given else DEFAULTS["prechecks"],
        record=f"{outputs}/prechecks_before.json",
        limit=5,
    )

if "gate" in steps:
    checks.unique_gate(
        name="Duplicates gate",
        database=database,
        table=gate["table"],
        columns=gate["columns"],
        constraint=gate["constraint"],
        record=f"{outputs}/unique_gate.json",
    )
