"""turnout.evidence: naming the evidence directory of a run (S0.3)."""

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pyinfra import context

from turnout import evidence
from turnout.evidence import (
    EVIDENCE_SUBDIRS,
    evidence_dir,
    is_safe_component,
    new_timestamp,
    run_timestamp,
)
from turnout.settings import Settings

ROOT = "/var/lib/turnout/evidence"


class FakeState:
    """Stands in for pyinfra's State: run_timestamp only needs an object to key on."""


def test_subdirs():
    assert EVIDENCE_SUBDIRS == ("logs", "outputs", "src_artifacts")


# --- new_timestamp ------------------------------------------------------------------------


def test_timestamp_format():
    assert new_timestamp(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "20240102T030405Z"


def test_timestamp_is_converted_to_utc():
    plus_two = timezone(timedelta(hours=2))

    assert new_timestamp(datetime(2024, 1, 2, 1, 4, 5, tzinfo=plus_two)) == "20240101T230405Z"


def test_timestamp_defaults_to_now():
    before = datetime.now(UTC).replace(microsecond=0)

    stamp = new_timestamp()

    assert re.fullmatch(r"\d{8}T\d{6}Z", stamp)
    parsed = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before <= parsed <= datetime.now(UTC)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        new_timestamp(datetime(2024, 1, 2, 3, 4, 5))


# --- evidence_dir -------------------------------------------------------------------------


def test_evidence_dir():
    assert evidence_dir(ROOT, "cutover", "20240102T030405Z") == f"{ROOT}/cutover/20240102T030405Z"


def test_trailing_slash_on_root():
    assert evidence_dir(ROOT + "/", "dry_run", "pinned-1.0") == f"{ROOT}/dry_run/pinned-1.0"


@pytest.mark.parametrize(
    "component",
    ["../x", "a/b", ".", "..", "", "/abs", "with space", "tab\t", "nul\x00", "é"],
)
@pytest.mark.parametrize("which", ["task", "timestamp"])
def test_unsafe_components_are_refused(component, which):
    args = {"task": "cutover", "timestamp": "20240102T030405Z", which: component}

    with pytest.raises(ValueError, match=f"evidence {which} must be a single path component"):
        evidence_dir(ROOT, **args)


@pytest.mark.parametrize(
    "root",
    ["var/lib/turnout", "./evidence", "", "/var/lib/../../etc", "/var/lib/turnout\n/x", None],
)
def test_bad_roots_are_refused(root):
    with pytest.raises(ValueError, match="evidence root must"):
        evidence_dir(root, "cutover", "20240102T030405Z")


def test_is_safe_component():
    assert is_safe_component("20240102T030405Z")
    assert is_safe_component("...")
    assert not is_safe_component("..")
    assert not is_safe_component(None)  # type: ignore[arg-type]


# --- run_timestamp ------------------------------------------------------------------------


@pytest.fixture
def counting_timestamps(monkeypatch):
    """new_timestamp returns t1, t2, … so tests can see when a new one is made."""
    made = []

    def fake_new_timestamp(now=None):
        made.append(f"t{len(made) + 1}")
        return made[-1]

    monkeypatch.setattr(evidence, "new_timestamp", fake_new_timestamp)
    monkeypatch.setattr(evidence, "_PROCESS_TIMESTAMP", {})
    return made


def test_pinned_timestamp_wins(counting_timestamps):
    settings = Settings(evidence_timestamp="20240102T030405Z")

    assert run_timestamp(settings, FakeState()) == "20240102T030405Z"
    assert run_timestamp(settings) == "20240102T030405Z"
    assert counting_timestamps == []


def test_one_timestamp_per_state(counting_timestamps):
    first, second = FakeState(), FakeState()

    assert run_timestamp(Settings(), first) == "t1"
    assert run_timestamp(Settings(evidence_root="/srv/other"), first) == "t1"
    assert run_timestamp(Settings(), second) == "t2"
    assert run_timestamp(Settings(), first) == "t1"


def test_one_timestamp_per_process_without_state(counting_timestamps):
    assert run_timestamp(Settings()) == "t1"
    assert run_timestamp(Settings()) == "t1"


def test_context_proxy_resolves_to_the_current_state(counting_timestamps):
    first, second = FakeState(), FakeState()

    with context.ctx_state.use(first):
        from_proxy = run_timestamp(Settings(), context.state)
    with context.ctx_state.use(second):
        from_second_proxy = run_timestamp(Settings(), context.state)

    assert from_proxy == run_timestamp(Settings(), first) == "t1"
    assert from_second_proxy == run_timestamp(Settings(), second) == "t2"
