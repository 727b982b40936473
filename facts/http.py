"""Facts about HTTP endpoints, fetched from the host itself (no redirects followed)."""

from pyinfra.api import StringCommand

from turnout.facts.hostside import HostsideFact
from turnout.remote import hostside_command


class HttpHealth(HostsideFact):
    """
    One GET of a health endpoint, judged: the expected ``status`` (default 200; a redirect always
    fails), the body rule ``body`` (default ``ok``: a JSON object with ``status == "ok"``; see
    ``turnout.hostside.web``: ``any``, ``json:true``, ``text:OK``, ``checks.db.status=up``) and
    every key (dotted path) of ``expect`` equal.

    .. code:: python

        from turnout.facts.http import HttpHealth
        health = host.get_fact(
            HttpHealth, url="http://127.0.0.1:18080/api/v1/health",
            expect={"db_backend": "postgresql"},
        )
        # {"ok": True, "healthy": True, "problem": None, "status": 200, "body": {...}}
    """

    def command(
        self,
        url: str,
        expect: dict | None = None,
        timeout: float = 10,
        status: int = 200,
        body: str = "ok",
    ) -> StringCommand:
        params = {
            "url": url,
            "expect": expect or {},
            "timeout": timeout,
            "status": status,
            "body": body,
        }
        return hostside_command("http_health", params)
