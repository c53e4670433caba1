"""Stopping an asyncio command cleanly on a signal instead of through KeyboardInterrupt."""

from __future__ import annotations

import asyncio
import contextlib
import signal

__all__ = ["stop_event"]


def stop_event(*signals: signal.Signals) -> asyncio.Event:
    """An event set by any of `signals`, so the loop can end its cycle and release what it wrote.

    Must be called inside the running loop. Where the loop cannot take signal handlers (not the main
    thread, not Unix) the event is only set by the caller.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop
