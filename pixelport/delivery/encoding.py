"""Content-Encoding negotiation: which of br and gzip a request's Accept-Encoding takes."""

from __future__ import annotations

import functools

CODINGS = ("br", "gzip")  # in order of preference: brotli wins a tie


@functools.lru_cache(maxsize=256)
def negotiate(accept_encoding: str) -> str | None:
    """The coding to answer with ("br" or "gzip"), or None for the identity.

    RFC 9110 §12.5.3: a coding's weight is its own entry's q, else that of `*`, else 0 (not
    acceptable); q=0 refuses it. The heaviest coding wins, br on a tie, unless the client
    weighs `identity` above it. Browsers send a handful of distinct values, hence the memo.
    """
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        if name == "x-gzip":
            name = "gzip"  # the old spelling RFC 9110 still asks servers to treat as gzip
        if name:
            weights.setdefault(name, _weight(params))
    star = weights.get("*", 0.0)
    best, best_weight = None, 0.0
    for coding in CODINGS:
        weight = weights.get(coding, star)
        if weight > best_weight:
            best, best_weight = coding, weight
    if best is not None and weights.get("identity", 0.0) > best_weight:
        return None
    return best


def _weight(params: str) -> float:
    """The q of an Accept-Encoding entry (1 without one; a malformed one refuses it)."""
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                weight = float(value.strip())
            except ValueError:
                return 0.0
            return weight if 0.0 <= weight <= 1.0 else 0.0
    return 1.0
