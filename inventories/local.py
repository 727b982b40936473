"""The local inventory: this machine, through pyinfra's ``@local`` connector.

pyinfra inventories/local.py deploys/app_up.py --dry
"""

local = ["@local"]
