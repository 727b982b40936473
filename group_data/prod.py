"""
Settings for the hosts of ``inventories/prod.py`` (the group named after the inventory file).

Keep this minimal: production differs from the defaults only where it must be stricter.
The repo does not know production's base URL: pass it with ``--data base_url=…``.
"""

# A production count must be exact; an estimate fails validation.
require_exact_counts = True
# drop_schema is staging-only (SPEC S1.2): it stays off here and is refused on prod.
drop_schema = False
# The cutover's roles: the groups inventories/prod.py builds from TURNOUT_PROD_APP_HOSTS and
# TURNOUT_PROD_DB_HOSTS.
app_hosts_group = "prod_app"
db_hosts_group = "prod_db"
# Production's health must say which database it runs on (the reference app's answer; set
# another key=value, or (), for an app that reports it otherwise).
health_expect = ("db_backend=postgresql",)
