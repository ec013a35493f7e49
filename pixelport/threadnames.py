"""Native names for pixelport's threads, so `top -H` and /proc tell them apart."""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable

_PR_SET_NAME = 15


def name_native_thread(name: str) -> None:
    """Give the calling OS thread `name` (Linux keeps 15 bytes); elsewhere nothing."""
    if sys.platform != "linux":
        return
    try:
        prctl = ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return
    prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


def namer(prefix: str) -> Callable[[], None]:
    """A ThreadPoolExecutor initializer naming each worker `prefix` plus a number."""
    lock = threading.Lock()
    count = [0]

    def initializer() -> None:
        with lock:
            number = count[0]
            count[0] += 1
        name_native_thread(f"{prefix}{number}")

    return initializer
