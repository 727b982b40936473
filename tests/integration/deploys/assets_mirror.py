"""Test deploy: one ``assets.mirror`` from ``--data assets_test_source=… assets_test_dest=…``
(``assets_test_delete=true`` adds ``--delete``). Run by tests/integration/test_assets_ops.py."""

from pyinfra import host

from turnout.operations import assets

assets.mirror(
    name="Mirror test assets",
    source=host.data.get("assets_test_source"),
    dest=host.data.get("assets_test_dest"),
    delete=host.data.get("assets_test_delete") is True,
    log_path=host.data.get("assets_test_log"),
)
