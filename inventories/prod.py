"""Production hosts, from the operator's environment (nothing secret or host-specific in the repo).

    export TURNOUT_PROD_HOSTS=app1.example.net
    export TURNOUT_SSH_KNOWN_HOSTS=~/.ssh/known_hosts.turnout   # pinned keys, checked strictly
    pyinfra inventories/prod.py deploys/app_up.py --dry

Settings for these hosts: ``group_data/all.py`` then ``group_data/prod.py``, then ``--data``.
"""

from turnout.inventory import ssh_hosts_from_env

prod = ssh_hosts_from_env("PROD")
