"""moto's request dispatch without a directory listing per request.

moto 5.2.1's server (``DomainDispatcherApplication.get_backend_for_host`` in
``moto/moto_server/werkzeug_app.py``) calls ``backends.list_of_moto_modules()``
for every request, under the dispatcher's one lock. That function lists
moto's package directory and stats each of its ~150 entries, so every request
made ~150 system calls while holding the lock every other request waits on.
Profiled under 8 concurrent UpdateItem callers, a third of the server's time
went there (py-spy, 2026-12-03).

Patch: list the directory once. moto's package does not change while the
server runs, so the answer is the same; only its cost changes.
"""

from __future__ import annotations

from moto import backends


def apply() -> None:
    """Answer list_of_moto_modules from one listing."""
    if getattr(backends, "_streamstack_modules_cached", False):
        return
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]
    backends._streamstack_modules_cached = True  # type: ignore[attr-defined]
