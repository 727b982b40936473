"""The test stack refuses to start its apps on ports something else already answers on."""

import importlib.util
import socket
from pathlib import Path

import pytest

STACK_PY = Path(__file__).resolve().parents[1] / "stack" / "stack.py"


def load_stack_module():
    spec = importlib.util.spec_from_file_location("turnout_test_stack", STACK_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_taken_app_port_stops_a_fresh_stack() -> None:
    stack = load_stack_module()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with pytest.raises(SystemExit, match=rf"app_staging \({taken}\)"):
            stack.check_app_ports_free({"app_staging": taken, "pg_source": taken})
    stack.check_app_ports_free({"app_staging": taken})  # free again: no complaint
