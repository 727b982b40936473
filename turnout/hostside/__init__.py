"""The host-side program: what turnout runs *on the target host*, never on the control machine.

``turnout/remote.py`` builds a zip application of ``turnout/dsn.py``, ``turnout/constants.py`` and
the modules of this package (real module names, so tracebacks name real files and lines),
places it once per run in the host user's cache (content-addressed, 0700) and runs
``<python> <cache>/hostside-<sha>.pyz <action> '<json-params>'``, so nothing has to be installed
there but Python and psycopg. DSNs are read on the host, from the process environment or the
server-side ``.env`` (compose's rules: ``envfile.py``), so the control machine never connects to a
database nor holds a password.

Every action prints exactly one JSON object on stdout. Fact actions always exit 0 and report
problems as ``{"ok": false, "error": "…"}`` (a failing fact command would fail the host); operation
actions exit 1 after printing their one-line reason to stderr. Every message passes through
``redact()`` with the passwords of the DSNs involved. An unexpected exception is reported with the
file and line it came from; its redacted traceback goes to the step's log in evidence.

Rules for every module here: stdlib + psycopg only (psycopg imported inside the functions that need
it), no ``from __future__``; import only the turnout modules the zip carries
(every ``hostside/*.py`` and ``turnout.remote.SHARED_MODULES``).

    python -c 'from turnout.remote import hostside_command as c
    print(c("path_modes", {"paths": ["/tmp"]}).get_raw_value())' | sh
"""
