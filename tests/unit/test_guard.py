"""turnout.guard: destructive steps need --data i_know_what_im_doing=true (S0.2)."""

from types import SimpleNamespace

import pytest
from pyinfra.api.exceptions import OperationError
from pyinfra.api.host import HostData

from turnout.guard import RELEASE_FLAG, ReleaseRefused, is_released, require_release

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
