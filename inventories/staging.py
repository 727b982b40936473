"""Staging hosts, from the operator's environment (nothing secret or host-specific in the repo).

    export TURNOUT_STAGING_HOSTS=staging.example.net
    export TURNOUT_SSH_KNOWN_HOSTS=~/.ssh/known_hosts.turnout   # pinned keys, checked strictly
    pyinfra inventories/staging.py deploys/app_up.py --dry

Settings for these hosts: ``group_data/all.py`` then ``group_data/staging.py``, then ``--data``.
"""

from turnout.inventory import ssh_hosts_from_env

staging = ssh_hosts_from_env("STAGING")
