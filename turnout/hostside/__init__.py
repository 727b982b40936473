"""The host-side program: what turnout runs *on the target host*, never on the control machine.

``turnout/remote.py`` ships ``turnout/dsn.py`` and the modules of this package, concatenated in
``SHIPPED_MODULES`` order, to the host through ``python3 - <action> <json-params>`` and a
here-document, so nothing has to be installed there but Python and psycopg. DSNs are read on the
host, from the process environment or the server-side ``.env``, so the control machine never
connects to a database nor holds a password.

Every action prints exactly one JSON object on stdout. Fact actions always exit 0 and report
problems as ``{"ok": false, "error": "…"}`` (a failing fact command would fail the host); operation
actions exit 1 after printing their one-line reason to stderr. Every message passes through
``redact()`` with the passwords of the DSNs involved.

Rules for every module here: stdlib + psycopg only (psycopg imported inside the functions that need
it), no ``from __future__``, no ``if __name__ == "__main__"`` block except in ``main.py`` (the last
shipped module); imports of turnout modules only under ``if __name__ != "__main__":`` — shipped,
the modules before define those names, and the program must never mix in an installed turnout.

    python -c 'from turnout.remote import hostside_command as c
    print(c("path_modes", {"paths": ["/tmp"]}).get_raw_value())' | sh
"""
