"""Native names for pixelport's threads, so `top -H` and /proc tell them apart."""

from __future__ import annotations

import ctypes
import itertools
import sys
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
    numbers = itertools.count()  # next() on it is atomic under the GIL

    def initializer() -> None:
        name_native_thread(f"{prefix}{next(numbers)}")

    return initializer
