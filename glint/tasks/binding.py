"""Tasks bound to one process: it alone holds, in memory, what the task needs.

A ``glance-download`` import reads the source as the caller, with the caller's token, which
glint never stores (:mod:`glint.tasks.handoff`): the process that took the request is the only
one that can run the task. The task row names that process's runner (``bound_to``, its lease
owner name); no other runner claims the task (:func:`glint.db.leases.claim_row`), so a sibling
API worker of ``glint serve --workers N`` that sees it (its reaper republishing stale pending
tasks, its start-up resubmitting pending ones) leaves it to its owner. When the owner is gone,
so are the credentials: the task is failed, by whichever process notices (:func:`alive`).
"""

from __future__ import annotations

import datetime
import os
import socket

from glint.tasks import handoff

# The runners of this process that are alive (their lease owner names): a process can tell
# its own runners from those of an earlier process that had its pid (PID 1 in a container).
LIVE: set[str] = set()


def alive(holder: str, since: datetime.datetime, now: datetime.datetime,
          ttl: float = handoff.DEFAULT_TTL) -> bool:
    """Whether the runner named ``holder`` (``host:pid:serve id``) may still hold what a task
    created at ``since`` needs: not after ``ttl`` seconds (the hand-off is dropped by then);
    on this host, while its process runs; on another host, until ``ttl`` (it cannot be asked).
    """
    if now - since >= datetime.timedelta(seconds=ttl):
        return False
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    if int(pid) == os.getpid():
        return holder in LIVE
    return _running(int(pid))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, though not glint
        return True
    return True
