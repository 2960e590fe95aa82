"""Facts about this machine's processes."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Is there a process `pid` on this machine? (Signal 0 checks without
    sending anything; one of another user's counts as alive.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
