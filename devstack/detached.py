"""``python -m devstack.detached``: run ``python -m $DEVSTACK_MODULE`` in its own process group.

A Ctrl-C in a terminal sends SIGINT to the whole foreground process group. The stack's services
run detached from it, so only ``python -m devstack`` sees the Ctrl-C and stops them one by one,
in reverse order, with SIGTERM. The service runs in this very process (same pid, same stderr).
"""

from __future__ import annotations

import os
import runpy
import sys
from typing import Final

MODULE_VARIABLE: Final = "DEVSTACK_MODULE"


def main() -> None:
    """Leave the parent's process group, then run the module named by the environment."""
    module = os.environ.pop(MODULE_VARIABLE, "")
    if not module:
        sys.exit(f"{MODULE_VARIABLE} names no module to run")
    os.setpgid(0, 0)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
