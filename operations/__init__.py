"""turnout's pyinfra operations (``from turnout.operations import db``).

Importing them installs turnout's one-line failures on pyinfra's logger (``turnout.failures``),
so a deploy of the operator's own that uses them prints one line per failing step too, not the
line followed by pyinfra's ``Error: executed 0 commands`` and ``No hosts remaining!``.
"""

from turnout.failures import install_one_line_failures

install_one_line_failures()
