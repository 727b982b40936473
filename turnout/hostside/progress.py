"""Progress lines of long operation actions (dump, restore, mirror).

An action called with ``progress_interval_s`` in its params prints, every that many seconds while
its tool runs, one line ``turnout: <step>: <what is done>`` on stderr (the control machine runs it
with pyinfra's ``print_output``, so the operator sees it at default verbosity) and appends the
same line to the step's log. A step shorter than one interval prints nothing. Lines are redacted.

    with Ticker("dump", 10.0, lambda: "12.0 MiB written", "/e/logs/pg_dump.log"):
        run_tool(...)
"""

import os
import re
import sys
import threading
import time
from collections.abc import Callable

from turnout.dsn import redact
from turnout.hostside.base import _SECRETS

# ``-- Name: t; Type: TABLE DATA; Schema: public; Owner: -``: the header pg_restore writes before
# each table's data in its SQL script.
TABLE_DATA_HEADER = b"; Type: TABLE DATA; "
# ``3365; 0 16390 TABLE DATA public t owner``: a TABLE DATA entry of ``pg_restore --list``.
TOC_TABLE_DATA_RE = re.compile(r"^\d+; \d+ \d+ TABLE DATA ")
# rsync ``--info=progress2``: ``  1048576000  50%  100.00MB/s    0:00:10 (xfr#3, to-chk=5/9)``.
RSYNC_PROGRESS_RE = re.compile(
    r"^\s*(?P<bytes>[\d,.]+)\s+(?P<percent>\d+)%\s+(?P<rate>\S+/s)\s+(?P<time>\d+:\d\d:\d\d)"
    r"(?:\s+\(xfr#(?P<xfr>\d+), (?:ir|to)-chk=(?P<left>\d+)/(?P<total>\d+)\))?\s*$"
)


def human_bytes(size: float) -> str:
    """``1536`` → ``"1.5 KiB"``; ``0`` → ``"0 B"``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def human_rate(done: float, seconds: float) -> str:
    """``done`` bytes in ``seconds`` as a rate: ``"4.0 MiB/s"`` (``"?/s"`` before any time)."""
    if seconds <= 0:
        return "?/s"
    return f"{human_bytes(done / seconds)}/s"


def human_duration(seconds: float) -> str:
    """``75`` → ``"1m15s"``; ``3700`` → ``"1h01m"``; ``9`` → ``"9s"``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def estimate_left(done: float, total: float, seconds: float) -> str | None:
    """Time left at the rate so far to go from ``done`` to ``total`` (``"~1m15s left"``), or None
    when it cannot be estimated (nothing done yet, no total, or past it)."""
    if done <= 0 or total <= 0 or seconds <= 0 or done >= total:
        return None
    return f"~{human_duration((total - done) * seconds / done)} left"


def dump_line(written: int, database_bytes: int | None, seconds: float) -> str:
    """The dump's progress: its size so far and rate, against the database's size on disk (a
    compressed dump ends smaller than the database, so that is a bound, not a target)."""
    line = f"{human_bytes(written)} of dump written, {human_rate(written, seconds)}"
    if database_bytes:
        line += (
            f"; the database is {human_bytes(database_bytes)} on disk "
            "(a compressed dump ends smaller)"
        )
    return line


def read_back_line(done: int, total: int, seconds: float) -> str:
    """The read-back of a dump: bytes read of its size, percent, rate and the time left."""
    percent = f" ({100 * done // total}%)" if total else ""
    line = f"reading the dump back: {human_bytes(done)} of {human_bytes(total)}{percent}, "
    line += human_rate(done, seconds)
    left = estimate_left(done, total, seconds)
    return f"{line}, {left}" if left else line


def toc_table_data(listing: str) -> int:
    """How many TABLE DATA entries a ``pg_restore --list`` listing holds (comments skipped)."""
    return sum(1 for line in listing.splitlines() if TOC_TABLE_DATA_RE.match(line))


def count_headers(
    chunk: bytes, tail: bytes, marker: bytes = TABLE_DATA_HEADER
) -> tuple[int, bytes]:
    """How many ``marker`` occurrences ``chunk`` completes, given the ``tail`` kept from the chunk
    before (a header may be split between two reads); returns (count, the new tail)."""
    data = tail + chunk
    keep = len(marker) - 1
    return data.count(marker), data[-keep:] if keep else b""


def restore_line(
    tables_done: int, tables_total: int, sql_bytes: int, seconds: float, fed: bool = False
) -> str:
    """The restore's progress through the dump's TABLE DATA entries, with the SQL bytes fed to
    psql and their rate. The table being loaded counts as started, not done. Once all of the SQL
    is fed (``fed``), psql is still building indexes and checking constraints: said so.

    >>> restore_line(7, 7, 3 << 20, 2.0, fed=True)
    'all 7 table data loaded (3.0 MiB of SQL); psql is creating indexes and checking constraints'
    """
    if fed:
        return (
            f"all {tables_done} table data loaded ({human_bytes(sql_bytes)} of SQL); psql is "
            "creating indexes and checking constraints"
        )
    started = min(tables_done, tables_total) if tables_total else tables_done
    of = f" of {tables_total}" if tables_total else ""
    percent = f" ({100 * started // tables_total}%)" if tables_total else ""
    return (
        f"table data {started}{of} started{percent}, "
        f"{human_bytes(sql_bytes)} of SQL fed to psql, {human_rate(sql_bytes, seconds)}"
    )


def rsync_progress(text: str) -> dict | None:
    """The last ``--info=progress2`` record in rsync's output ``text`` (records end with ``\\r``
    or ``\\n``; one not ended yet is left out): bytes, percent, rate, time (rsync's estimate
    of the time left while it runs), files transferred and entries left to check; None when
    there is none."""
    for record in reversed(re.split(r"[\r\n]", text)[:-1]):  # the last may be incomplete
        match = RSYNC_PROGRESS_RE.match(record)
        if match:
            return {
                "bytes": int(re.sub(r"[,.]", "", match["bytes"])),
                "percent": int(match["percent"]),
                "rate": match["rate"],
                "time": match["time"],
                "files": int(match["xfr"] or 0),
                "left": int(match["left"]) if match["left"] else None,
                "total": int(match["total"]) if match["total"] else None,
            }
    return None


def rsync_line(progress: dict, seconds: float) -> str:
    """One line from an ``rsync_progress`` record, ``seconds`` into the transfer: bytes sent and
    rsync's percent of the bytes it has to send (of the files found so far: rsync scans
    incrementally), the rate so far and the time left at that rate."""
    done, percent = progress["bytes"], progress["percent"]
    line = (
        f"{human_bytes(done)} transferred ({percent}% of the bytes to send), "
        f"{human_rate(done, seconds)}"
    )
    left = estimate_left(done, done * 100 / percent, seconds) if percent else None
    line += f", {left}" if left else ""
    line += f", files done: {progress['files']}"
    if progress["total"] is not None:
        line += f", {progress['left']} of {progress['total']} entries still to check"
    return line


def without_progress(output: str) -> str:
    """rsync's output without its ``--info=progress2`` records (for the log and the parser)."""
    kept = [line for line in re.split(r"\r\n|\r|\n", output) if not RSYNC_PROGRESS_RE.match(line)]
    return "\n".join(line for line in kept if line)


def emit(step: str, text: str, log_path: str | None) -> None:
    """Print ``turnout: <step>: <text>`` (redacted) on stderr and append it to ``log_path`` (a
    failed write is not raised from the ticking thread: the step's own log record, written
    when its tool ends, fails the step with one line)."""
    line = redact(f"turnout: {step}: {text}", _SECRETS)
    print(line, file=sys.stderr, flush=True)
    if log_path:
        try:
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        except OSError:
            pass


class Ticker:
    """A context manager printing ``status()`` every ``interval`` seconds while its block runs
    (never more often; nothing when the block is shorter than one interval, or when ``status``
    answers None). ``interval`` None or 0 disables it."""

    def __init__(
        self,
        step: str,
        interval: float | None,
        status: Callable[[float], str | None],
        log_path: str | None = None,
    ) -> None:
        self.step, self.interval, self.status, self.log_path = step, interval, status, log_path
        self.stopped = threading.Event()
        self.started = time.monotonic()
        self.thread: threading.Thread | None = None

    def run(self) -> None:
        """The ticking thread: one line per interval until stopped."""
        while not self.stopped.wait(self.interval):
            try:
                text = self.status(time.monotonic() - self.started)
            except Exception:  # noqa: BLE001 - progress must never break the step
                text = None
            if text and not self.stopped.is_set():
                emit(self.step, text, self.log_path)

    def __enter__(self) -> "Ticker":
        self.started = time.monotonic()
        if self.interval and self.interval > 0:
            self.thread = threading.Thread(target=self.run, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        if self.thread:
            self.thread.join()


def interval_of(params: dict) -> float | None:
    """The ``progress_interval_s`` of an action's params (None: no progress lines)."""
    value = params.get("progress_interval_s")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None
