"""Which embedded ICC profiles are sRGB ones, so that converting from them can be skipped."""

from __future__ import annotations

import hashlib

_SRGB_PROFILES: dict[bytes, bool] = {}


def is_srgb(profile: bytes) -> bool:
    """Whether an ICC profile is an sRGB one (converting from it to sRGB changes nothing).

    Most camera and web images embed "sRGB IEC61966-2.1"; building an lcms transform for it
    costs about as much as resizing a small image, so it is skipped. Decided once per profile.
    """
    digest = hashlib.blake2b(profile, digest_size=16).digest()
    known = _SRGB_PROFILES.get(digest)
    if known is None:
        known = profile[16:20] == b"RGB " and b"sRGB" in profile[:4096]
        if len(_SRGB_PROFILES) < 1024:
            _SRGB_PROFILES[digest] = known
    return known
