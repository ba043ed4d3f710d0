"""``python -m devstack.detached``: run ``python -m $DEVSTACK_MODULE`` in its own process group.

A Ctrl-C in a terminal sends SIGINT to the whole foreground process group. The stack's services
run detached from it, so only ``python -m devstack`` sees the Ctrl-C and stops them one by one,
in reverse order, with SIGTERM. The service runs in this very process (same pid, same stderr).
Should ``python -m devstack`` die without stopping it (SIGKILL, out of memory), the service
sees its parent change and stops itself as on SIGTERM, leaving no process holding the ports.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time
from typing import Final

MODULE_VARIABLE: Final = "DEVSTACK_MODULE"
#: How often the service checks that its launcher is still alive.
PARENT_CHECK_S: Final = 0.5


def _stop_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    """Leave the parent's process group, then run the module named by the environment."""
    module = os.environ.pop(MODULE_VARIABLE, "")
    if not module:
        sys.exit(f"{MODULE_VARIABLE} names no module to run")
    os.setpgid(0, 0)
    threading.Thread(
        target=_stop_when_orphaned, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
