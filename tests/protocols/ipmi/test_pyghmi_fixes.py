"""The process-wide fixes the facade applies to pyghmi."""

from __future__ import annotations


def test_pyghmi_session_locks_are_one_and_retiring_never_blocks_the_loop() -> None:
    """pyghmi's two locks, taken in opposite orders by two threads, deadlocked under load."""
    import threading
    from types import SimpleNamespace

    from pyghmi.ipmi.private import session  # type: ignore[import-untyped, unused-ignore]

    from protocols.ipmi import _pyghmi

    assert session.WAITING_SESSIONS is session.KEEPALIVE_SESSIONS
    fake = SimpleNamespace(ipmi_session=SimpleNamespace(broken=False))
    held, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with session.KEEPALIVE_SESSIONS:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    held.wait(10)
    try:
        _pyghmi.retire(fake, wait=False)  # returns at once although the lock is busy
        assert fake.ipmi_session.broken
    finally:
        release.set()
        holder.join()
