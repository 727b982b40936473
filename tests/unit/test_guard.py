"""turnout.guard: destructive steps need --data i_know_what_im_doing=true (S0.2)."""

from types import SimpleNamespace

import pytest
from pyinfra.api.exceptions import OperationError
from pyinfra.api.host import HostData
from pyinfra.api.inventory import Inventory

from turnout.guard import (
    PROD_GROUP,
    RELEASE_FLAG,
    ReleaseRefused,
    is_released,
    refuse_destructive,
    require_release,
)
from turnout.settings import DEFAULTS, SettingsError, load_settings, parse_release_flag

FIX = "read the --dry plan, then re-run with --data i_know_what_im_doing=true"


def test_flag_name():
    assert RELEASE_FLAG == "i_know_what_im_doing"


# pyinfra's CLI parses --data i_know_what_im_doing=true (any case) to True. (pyinfra_cli is not
# imported here: importing it monkey-patches the whole test process with gevent.)
@pytest.mark.parametrize("value", [True, "true"])
def test_release_passes(value):
    data = {RELEASE_FLAG: value}

    assert is_released(data)
    assert require_release(data, "restore-db") is None


def test_missing_flag_is_refused_with_the_fix():
    with pytest.raises(ReleaseRefused) as raised:
        require_release({}, "restore-db")

    assert str(raised.value) == (
        "refusing restore-db: it is destructive and not released; "
        "read the --dry plan, then re-run with --data i_know_what_im_doing=true"
    )
    assert not is_released({})


def test_false_flag_is_refused_naming_the_value():
    with pytest.raises(ReleaseRefused) as raised:
        require_release({RELEASE_FLAG: False}, "restore-assets")

    message = str(raised.value)
    assert message.startswith("refusing restore-assets: ")
    assert "i_know_what_im_doing is false" in message
    assert message.endswith(FIX)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("ture", "'ture' (str)"),
        ("True", "'True' (str)"),
        ("yes", "'yes' (str)"),
        (1, "1 (int)"),
        (1.0, "1.0 (float)"),
        ([True], "[True] (list)"),
    ],
)
def test_other_values_are_refused_naming_the_bad_value(value, shown):
    with pytest.raises(ReleaseRefused) as raised:
        require_release({RELEASE_FLAG: value}, "drop-schema")

    message = str(raised.value)
    assert message.startswith("refusing drop-schema: i_know_what_im_doing must be true")
    assert f"got {shown}" in message
    assert message.endswith(FIX)
    assert not is_released({RELEASE_FLAG: value})


def test_long_bad_values_are_truncated():
    with pytest.raises(ReleaseRefused) as raised:
        require_release({RELEASE_FLAG: "x" * 500}, "restore-db")

    assert "x" * 100 not in str(raised.value)


def test_refusal_is_an_operation_error_so_pyinfra_aborts():
    assert issubclass(ReleaseRefused, OperationError)


def test_pyinfra_host_data_is_read_by_attribute():
    released = HostData("host1", {}, {RELEASE_FLAG: True})
    group_default = HostData("host1", {}, {RELEASE_FLAG: False})
    overridden = HostData("host1", {RELEASE_FLAG: True}, {RELEASE_FLAG: False})

    assert is_released(released)
    assert not is_released(group_default)
    assert is_released(overridden)
    with pytest.raises(ReleaseRefused, match="is false"):
        require_release(group_default, "restore-db")
    with pytest.raises(ReleaseRefused, match="not released"):
        require_release(HostData("host1", {}), "restore-db")


def test_attribute_objects_work():
    assert is_released(SimpleNamespace(i_know_what_im_doing=True))
    assert not is_released(SimpleNamespace())


# --- one parser for the flag --------------------------------------------------------------


def test_the_flag_is_a_setting():
    assert DEFAULTS[RELEASE_FLAG] is False


@pytest.mark.parametrize(
    "value", [True, False, "true", "false", "True", "yes", 1, 0, 1.0, None, [True], "x" * 50]
)
def test_guard_and_settings_read_the_flag_alike(value):
    flag = parse_release_flag(value)

    assert is_released({RELEASE_FLAG: value}) is (flag is True)
    if flag is None:
        with pytest.raises(SettingsError, match=f"setting {RELEASE_FLAG} must be true or false"):
            load_settings({RELEASE_FLAG: value})
    else:
        assert load_settings({RELEASE_FLAG: value}).i_know_what_im_doing is flag


# --- refuse_destructive -------------------------------------------------------------------

STAGING_ONLY = (
    "refusing drop-schema: it is for staging only and this host is in the prod group; "
    "leave it out of the prod run (it runs only against inventories/staging.py)"
)


def test_prod_group_name():
    assert PROD_GROUP == "prod"


@pytest.mark.parametrize("staging_only", [False, True])
def test_released_step_on_staging_passes(staging_only):
    released = {RELEASE_FLAG: True}

    assert refuse_destructive(released, "drop-schema", ["staging"], staging_only) is None


def test_released_step_on_prod_passes_unless_staging_only():
    released = {RELEASE_FLAG: "true"}

    assert refuse_destructive(released, "restore-db", ["prod"]) is None
    with pytest.raises(ReleaseRefused) as raised:
        refuse_destructive(released, "drop-schema", ["prod"], staging_only=True)

    assert str(raised.value) == STAGING_ONLY


def test_staging_only_on_prod_is_refused_before_asking_for_the_flag():
    with pytest.raises(ReleaseRefused) as raised:
        refuse_destructive({}, "drop-schema", ("staging", "prod"), staging_only=True)

    assert str(raised.value) == STAGING_ONLY


@pytest.mark.parametrize(
    ("value", "reason"),
    [(None, "not released"), (False, "is false"), ("yes", "must be true to release it")],
)
def test_unreleased_step_is_refused_as_require_release_does(value, reason):
    data = {} if value is None else {RELEASE_FLAG: value}

    with pytest.raises(ReleaseRefused) as raised:
        refuse_destructive(data, "restore-assets", ["staging"], staging_only=True)
    with pytest.raises(ReleaseRefused) as required:
        require_release(data, "restore-assets")

    assert str(raised.value) == str(required.value)
    assert reason in str(raised.value)
    assert str(raised.value).endswith(FIX)


def test_groups_may_be_any_iterable():
    released = {RELEASE_FLAG: True}

    with pytest.raises(ReleaseRefused, match="staging only"):
        refuse_destructive(released, "drop-schema", iter(["prod"]), staging_only=True)
    refuse_destructive(released, "drop-schema", (name for name in ["staging"]), staging_only=True)


def test_a_real_pyinfra_host_in_the_prod_group_is_refused():
    inventory = Inventory(
        (["db1", "db2"], {RELEASE_FLAG: False}),
        override_data={RELEASE_FLAG: True},
        prod=(["db1"], {}),
        staging=(["db2"], {}),
    )
    prod, staging = inventory.get_host("db1"), inventory.get_host("db2")

    with pytest.raises(ReleaseRefused, match="this host is in the prod group"):
        refuse_destructive(prod.data, "drop-schema", prod.groups, staging_only=True)
    refuse_destructive(staging.data, "drop-schema", staging.groups, staging_only=True)
    refuse_destructive(prod.data, "restore-db", prod.groups)
