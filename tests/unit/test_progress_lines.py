"""Progress lines of long steps: formatting, rates, estimates, rsync progress2 parsing, TOC and
SQL header counting, and the ticker's timing (``turnout/hostside/progress.py``)."""

import time

import pytest

from turnout.hostside.assets import rsync_parse
from turnout.hostside.progress import (
    Ticker,
    count_headers,
    dump_line,
    estimate_left,
    human_bytes,
    human_duration,
    human_rate,
    interval_of,
    read_back_line,
    restore_line,
    rsync_line,
    rsync_progress,
    toc_table_data,
    without_progress,
)

LISTING = """;
; Archive created at 2026-11-25 00:00:00 UTC
;     dbname: app
; Selected TOC Entries:
;
215; 1259 16390 TABLE public users app
216; 1259 16400 TABLE public orders app
3365; 0 16390 TABLE DATA public users app
3366; 0 16400 TABLE DATA public orders app
3367; 0 16410 TABLE DATA public "PlayCount" app
3368; 0 0 SEQUENCE SET public users_id_seq app
;3369; 0 16420 TABLE DATA public commented app
"""

# What rsync --info=progress2 --itemize-changes --stats prints to a pipe (records end with \r).
RSYNC_OUTPUT = (
    "cd+++++++++ ./\n>f+++++++++ a.bin\n\r          32768   0%    0.00kB/s    0:00:00  "
    "\r       22052864  44%   20.00MB/s    0:00:01  "
    "\r       30000000  60%   20.81MB/s    0:00:01 (xfr#1, to-chk=1/3)\n"
    ">f+++++++++ b.bin\n\r       50000000 100%   20.66MB/s    0:00:02 (xfr#2, to-chk=0/3)\n"
    "\nNumber of files: 3 (reg: 2, dir: 1)\nTotal transferred file size: 50000000 bytes\n"
)


def test_human_bytes_rate_and_duration() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * 1024**3) == "3.0 GiB"
    assert human_bytes(5 * 1024**4) == "5.0 TiB"
    assert human_rate(8 * 1024**2, 2) == "4.0 MiB/s"
    assert human_rate(10, 0) == "?/s"
    assert human_duration(9) == "9s"
    assert human_duration(75) == "1m15s"
    assert human_duration(3700) == "1h01m"


def test_estimate_left_only_when_it_can_be_made() -> None:
    assert estimate_left(25, 100, 10) == "~30s left"
    assert estimate_left(0, 100, 10) is None
    assert estimate_left(100, 100, 10) is None
    assert estimate_left(10, 0, 10) is None


def test_dump_line_says_what_it_compares() -> None:
    line = dump_line(10 * 1024**2, 80 * 1024**2, 5)
    assert line.startswith("10.0 MiB of dump written, 2.0 MiB/s")
    assert "the database is 80.0 MiB on disk (a compressed dump ends smaller)" in line
    assert "database" not in dump_line(1024, None, 1)


def test_read_back_line_has_percent_rate_and_estimate() -> None:
    line = read_back_line(25 * 1024**2, 100 * 1024**2, 10)
    assert line == "reading the dump back: 25.0 MiB of 100.0 MiB (25%), 2.5 MiB/s, ~30s left"


def test_toc_counts_table_data_entries_only() -> None:
    assert toc_table_data(LISTING) == 3
    assert toc_table_data("") == 0


def test_count_headers_across_chunk_boundaries() -> None:
    script = (
        b"SET x;\n--\n-- Name: users; Type: TABLE DATA; Schema: public; Owner: -\n--\nCOPY ...\n"
        b"-- Name: orders; Type: TABLE DATA; Schema: public; Owner: -\n"
        b"-- Name: users_pkey; Type: CONSTRAINT; Schema: public; Owner: -\n"
    )
    for size in (1, 7, 19, 64, len(script)):
        total, tail = 0, b""
        for start in range(0, len(script), size):
            found, tail = count_headers(script[start : start + size], tail)
            total += found
        assert total == 2, size


def test_restore_line() -> None:
    line = restore_line(2, 4, 3 * 1024**2, 3)
    assert line == ("table data 2 of 4 started (50%), 3.0 MiB of SQL fed to psql, 1.0 MiB/s")
    assert restore_line(1, 0, 0, 1).startswith("table data 1 started, ")


def test_rsync_progress_takes_the_last_record() -> None:
    progress = rsync_progress(RSYNC_OUTPUT)
    assert progress == {
        "bytes": 50000000,
        "percent": 100,
        "rate": "20.66MB/s",
        "time": "0:00:02",
        "files": 2,
        "left": 0,
        "total": 3,
    }
    partial = rsync_progress(RSYNC_OUTPUT[: RSYNC_OUTPUT.index("(xfr#1")])
    assert partial is not None
    assert partial["bytes"] == 22052864 and partial["files"] == 0 and partial["total"] is None
    assert rsync_progress("Number of files: 3\n") is None
    assert (
        rsync_progress("  1,234,567  12%  1.00MB/s  0:01:00 (xfr#1, ir-chk=10/20)\r")["bytes"]
        == 1234567
    )


def test_rsync_line() -> None:
    progress = rsync_progress(RSYNC_OUTPUT[: RSYNC_OUTPUT.index(">f+++++++++ b")])
    line = rsync_line(progress, 2.0)
    assert line == (
        "28.6 MiB transferred (60% of the bytes to send), 14.3 MiB/s, ~1s left, "
        "files done: 1, 1 of 3 entries still to check"
    )
    assert "left" not in rsync_line({**progress, "percent": 0}, 2.0)


def test_itemize_and_stats_parsing_survive_progress_records() -> None:
    cleaned = without_progress(RSYNC_OUTPUT)
    assert "%" not in cleaned and "\r" not in cleaned
    counts = rsync_parse(cleaned)
    assert counts["add"] == 3 and counts["add_files"] == 2
    assert counts["source_entries"] == 2
    assert rsync_parse(RSYNC_OUTPUT)["add_files"] == 2


def test_interval_of() -> None:
    assert interval_of({"progress_interval_s": 0.2}) == 0.2
    assert interval_of({"progress_interval_s": 0}) is None
    assert interval_of({"progress_interval_s": True}) is None
    assert interval_of({}) is None


def test_ticker_prints_every_interval_to_stderr_and_log(capsys, tmp_path) -> None:
    log = tmp_path / "step.log"
    calls = []

    def status(seconds: float) -> str:
        calls.append(seconds)
        return "password=hunter2 and 1 MiB done"

    with Ticker("pg_dump", 0.1, status, str(log)):
        time.sleep(0.55)
    lines = capsys.readouterr().err.splitlines()
    assert 3 <= len(lines) <= 5
    assert all(line.startswith("turnout: pg_dump: ") for line in lines)
    assert all("hunter2" not in line for line in lines)
    assert all(b >= a + 0.09 for a, b in zip(calls, calls[1:], strict=False))
    assert log.read_text().count("turnout: pg_dump: ") == len(lines)
    assert oct(log.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("interval", [None, 0.5])
def test_ticker_prints_nothing_for_a_short_step(capsys, tmp_path, interval) -> None:
    with Ticker("rsync", interval, lambda seconds: "x", str(tmp_path / "log")):
        time.sleep(0.1)
    assert capsys.readouterr().err == ""
    assert not (tmp_path / "log").exists()


def test_live_output_hides_only_the_stopped_steps_line_once_interrupted(monkeypatch) -> None:
    import pyinfra.connectors.util as connector_util

    from turnout import lock
    from turnout.failures import install_live_output_filter, live_line_shown

    stopped = "[web1] turnout: pg_dump: interrupted (SIGTERM): pg_dump of X was stopped"
    progress = "[web1] turnout: pg_dump: 1.0 MiB of dump written, 1.0 MiB/s"
    assert live_line_shown(stopped) and live_line_shown(progress)
    printed = []
    monkeypatch.setattr(connector_util, "echo", lambda message, **kwargs: printed.append(message))
    install_live_output_filter()
    install_live_output_filter()  # once only
    monkeypatch.setitem(lock.INTERRUPT, "signal", 2)
    assert not live_line_shown(stopped) and live_line_shown(progress)
    connector_util.echo(stopped, err=True)
    connector_util.echo(progress, err=True)
    assert printed == [progress]
