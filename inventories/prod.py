"""Production hosts, from the operator's environment (nothing secret or host-specific in the repo).

    export TURNOUT_PROD_HOSTS=app1.example.net,app2.example.net,db1.example.net
    export TURNOUT_PROD_APP_HOSTS=app1.example.net,app2.example.net   # default: every host
    export TURNOUT_PROD_DB_HOSTS=db1.example.net        # required with several hosts
    export TURNOUT_SSH_KNOWN_HOSTS=~/.ssh/known_hosts.turnout   # pinned keys, checked strictly
    pyinfra inventories/prod.py deploys/cutover.py --dry

Groups: ``prod`` (every host), ``prod_app`` (the app hosts: freeze, restore-assets, up, health,
smoke) and ``prod_db`` (the database's host: backup, restore-db, migrate, once);
``group_data/prod.py`` names the last two in ``app_hosts_group``/``db_hosts_group``.
Settings for these hosts: ``group_data/all.py`` then ``group_data/prod.py``, then ``--data``.
"""

from turnout.inventory import role_hosts, ssh_hosts_from_env

prod = ssh_hosts_from_env("PROD")
prod_app = role_hosts("PROD", "APP", prod)
prod_db = role_hosts("PROD", "DB", prod)
