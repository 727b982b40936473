"""The ``@destructive`` decorator (turnout/guard.py) on real pyinfra operations in a real pyinfra
``State``: an unreleased call is refused with one sentence naming the step and the fix, before
pyinfra plans the operation (no operation in the state, the body never run, nothing on disk
touched), in a planning-only run (``--dry``) as in an executing one; the release lets it through;
``when`` limits it to the calls it says; ``staging_only`` refuses hosts of ``prod`` even when
released. The shipped destructive operations carry it."""

from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State, operation
from pyinfra.context import ctx_host, ctx_state

from turnout.guard import RELEASE_FLAG, ReleaseRefused, destructive

FIX = "read the --dry plan, then re-run with --data i_know_what_im_doing=true"
RAN: list[str] = []  # what the operations' bodies did


@destructive("touch-it (writes the file)")
@operation()
def touch_it(path: str):
    """Write ``path`` (a destructive stand-in: the body runs only when pyinfra plans it)."""
    RAN.append(path)
    Path(path).write_text("touched\n")
    yield f"true {path}"


@destructive("purge (deletes rows)", when=lambda kwargs: kwargs.get("apply", True))
@operation()
def purge(apply: bool = True):
    RAN.append(f"purge apply={apply}")
    yield "true purge"


@destructive("drop-schema (drops schema public)", staging_only=True)
@operation()
def drop_schema():
    RAN.append("drop_schema")
    yield "true drop"


def pyinfra_host(data: dict, groups: tuple[str, ...] = (), executing: bool = False):
    """A real pyinfra State with one ``@local`` host carrying ``data`` (in ``groups``)."""
    inventory = Inventory((["@local"], {}), **{group: (["@local"], {}) for group in groups})
    state = State(inventory, Config())
    state.is_executing = executing
    host = inventory.get_host("@local")
    host.data.override_datas.update(data)  # as --data sets it
    return state, host


def planned_ops(state: State, host) -> int:
    return state.get_meta_for_host(host).ops


@pytest.fixture(autouse=True)
def nothing_ran():
    RAN.clear()
    yield
    RAN.clear()


@pytest.mark.parametrize("executing", [False, True], ids=["planning (--dry)", "executing"])
@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({}, "it is destructive and not released"),
        ({RELEASE_FLAG: None}, "it is destructive and not released"),
        ({RELEASE_FLAG: False}, "it is destructive and i_know_what_im_doing is false"),
        ({RELEASE_FLAG: "yes"}, "i_know_what_im_doing must be true to release it, got 'yes' (str)"),
    ],
)
def test_an_unreleased_call_is_refused_before_anything(
    tmp_path: Path, executing: bool, data: dict, why: str
) -> None:
    state, host = pyinfra_host(data, executing=executing)
    target = tmp_path / "file"
    with ctx_state.use(state), ctx_host.use(host):
        with pytest.raises(ReleaseRefused) as refused:
            touch_it(path=str(target))
    assert str(refused.value) == f"refusing touch-it (writes the file): {why}; {FIX}"
    assert planned_ops(state, host) == 0  # pyinfra never saw the operation
    assert RAN == [] and not target.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", [True, "true"])
def test_a_released_call_is_planned_and_runs(tmp_path: Path, flag: object) -> None:
    state, host = pyinfra_host({RELEASE_FLAG: flag})
    target = tmp_path / "file"
    with ctx_state.use(state), ctx_host.use(host):
        touch_it(path=str(target))
        assert planned_ops(state, host) == 1
        op_hash = state.get_op_order()[0]
        commands = [
            command.get_raw_value()
            for command in state.get_op_data_for_host(host, op_hash).command_generator()
        ]
    assert commands == [f"true {target}"]
    assert set(RAN) == {str(target)} and target.read_text() == "touched\n"


def test_when_limits_the_guard_to_the_calls_it_names() -> None:
    state, host = pyinfra_host({})
    with ctx_state.use(state), ctx_host.use(host):
        purge(apply=False)  # a dry count: not destructive, no release needed
        assert planned_ops(state, host) == 1
        with pytest.raises(ReleaseRefused, match=r"^refusing purge \(deletes rows\): "):
            purge(apply=True)
        with pytest.raises(ReleaseRefused):
            purge()  # the default applies
        assert planned_ops(state, host) == 1


def test_staging_only_refuses_prod_even_when_released() -> None:
    state, host = pyinfra_host({RELEASE_FLAG: True}, groups=("prod",))
    with ctx_state.use(state), ctx_host.use(host):
        with pytest.raises(ReleaseRefused) as refused:
            drop_schema()
    assert str(refused.value) == (
        "refusing drop-schema (drops schema public): it is for staging only and this host is in "
        "the prod group; leave it out of the prod run (it runs only against inventories/staging.py)"
    )
    assert planned_ops(state, host) == 0 and RAN == []

    state, host = pyinfra_host({RELEASE_FLAG: True}, groups=("staging",))
    with ctx_state.use(state), ctx_host.use(host):
        drop_schema()
        assert planned_ops(state, host) == 1

    state, host = pyinfra_host({}, groups=("staging",))
    with ctx_state.use(state), ctx_host.use(host):
        with pytest.raises(ReleaseRefused, match="not released"):
            drop_schema()


def test_the_decorated_operation_keeps_its_name_docs_and_step() -> None:
    assert touch_it.__name__ == "touch_it"
    assert touch_it.__doc__.startswith("Write ``path``")
    assert touch_it.destructive_step == "touch-it (writes the file)"
    assert hasattr(touch_it, "_inner")  # pyinfra's own attribute passes through


def test_the_shipped_restore_refuses_unreleased_and_touches_nothing(tmp_path: Path) -> None:
    """The real restore-assets operation: refused while loading, before its plan fact runs."""
    from turnout.operations import swap

    dest = tmp_path / "assets"
    dest.mkdir()
    (dest / "live.txt").write_text("live\n")
    state, host = pyinfra_host({})
    with ctx_state.use(state), ctx_host.use(host):
        with pytest.raises(ReleaseRefused) as refused:
            swap.restore_tarball(
                tarball=str(tmp_path / "assets.tar.gz"),
                dest=str(dest),
                marker=str(tmp_path / "marker.json"),
                timestamp="20261125T000000Z",
            )
    assert str(refused.value) == (
        f"refusing restore-assets (replaces the live assets directory): it is destructive and "
        f"not released; {FIX}"
    )
    assert planned_ops(state, host) == 0
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["assets", "live.txt"]


def test_the_shipped_destructive_operations_carry_the_guard() -> None:
    from turnout.operations import checks, db, envphase, pgload, swap

    steps = {
        "swap.restore_tarball": swap.restore_tarball,
        "swap.swap_back": swap.swap_back,
        "db.restore": db.restore,
        "checks.dedupe": checks.dedupe,
        "pgload.reset": pgload.reset,
        "db.sqlite_restore": db.sqlite_restore,
        "envphase.apply": envphase.apply,
    }
    missing = [name for name, op in steps.items() if not getattr(op, "destructive_step", None)]
    assert missing == []
