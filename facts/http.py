"""Facts about HTTP endpoints, fetched from the host itself (no redirects followed)."""

from pyinfra.api import StringCommand

from turnout.facts.hostside import HostsideFact
from turnout.remote import hostside_command


class HttpHealth(HostsideFact):
    """
    One GET of a health endpoint, judged: 200, a JSON object with ``status == "ok"`` and every
    key of ``expect`` equal. A redirect is a failure.

    .. code:: python

        from turnout.facts.http import HttpHealth
        health = host.get_fact(
            HttpHealth, url="http://127.0.0.1:18080/api/v1/health",
            expect={"db_backend": "postgresql"},
        )
        # {"ok": True, "healthy": True, "problem": None, "status": 200, "body": {...}}
    """

    def command(self, url: str, expect: dict | None = None, timeout: float = 10) -> StringCommand:
        params = {"url": url, "expect": expect or {}, "timeout": timeout}
        return hostside_command("http_health", params)
