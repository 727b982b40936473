"""Test deploy: ``swap.restore_tarball`` (or ``swap.swap_back`` with ``swap_mode=back``) from
``--data swap_tarball=… swap_dest=… swap_marker=… swap_ts=…`` (``swap_strip``, ``swap_prev``
optional). Run by tests/integration/test_asset_swap.py on ``@local``; destructive, so it needs
``--data i_know_what_im_doing=true``."""

from pyinfra import host

from turnout.operations import swap

data = host.data

if data.get("swap_mode") == "back":
    swap.swap_back(
        name="Swap the test assets back",
        dest=data.get("swap_dest"),
        marker=data.get("swap_marker"),
        timestamp=str(data.get("swap_ts")),
        prev=data.get("swap_prev") or None,
    )
else:
    swap.restore_tarball(
        name="Restore the test assets",
        tarball=data.get("swap_tarball"),
        dest=data.get("swap_dest"),
        marker=data.get("swap_marker"),
        timestamp=str(data.get("swap_ts")),
        strip_components=int(data.get("swap_strip") or 0),
        log_path=data.get("swap_log") or None,
    )
