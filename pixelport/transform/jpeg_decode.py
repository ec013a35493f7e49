"""JPEG decoded at 1/2, 1/4 or 1/8 through libjpeg-turbo's in-memory API (simplejpeg).

The pixels are libvips' own, bit for bit (tests/test_jpeg_decode.py): libvips' wheel links
mozjpeg, whose decoder is libjpeg-turbo's, and both use the same settings (accurate integer
IDCT, smooth chroma upsampling). libjpeg-turbo reads the whole file from memory here, where
libvips feeds it through its own source object piece by piece, the likely cause of the
difference (not verified). Measured in one thread (docs/performance.md, eighth round): a
12 MP photo at 1/8 in 42.8 ms against 49.4, and a 1200x900 photo at 1/4 in 2.3 ms against 3.4.

Only the common case is taken: YCbCr or grey, 8-bit, with no or one whole ICC profile, and
at most MAX_PIXELS once decoded. Anything else, and anything libjpeg warns about (a truncated
file, stray bytes), gives None: libvips decodes it, with its own tolerance and its own
errors. The file's density is not read: only PNG output writes one, and formats.encode writes
libvips' default there whenever metadata is stripped, the one case that decodes through here.
"""

from __future__ import annotations

from typing import Any

import pyvips
import simplejpeg

from pixelport.transform import jpeg_header, profiles

_BANDS = {"YCbCr": ("RGB", 3), "Gray": ("GRAY", 1)}
# Decoded whole, where libvips' loader streams lines into the resize or the encoder: larger
# decodes (outputs of thousands of pixels a side) go to libvips, which keeps them in bounded
# memory. 8 MP is 24 MB of RGB, and covers thumbnails of photos up to 128 MP.
MAX_PIXELS = 8_000_000


def shrunk(data: bytes, shrink: int, orientation: int) -> Any | None:
    """The JPEG decoded at 1/shrink, upright, as a libvips image; None: let libvips do it."""
    profile = jpeg_header.icc_profile(data)
    if profile is None:
        return None
    try:
        height, width, colourspace, _ = simplejpeg.decode_jpeg_header(data)
        mode, bands = _BANDS[colourspace]
        # The smallest of libjpeg-turbo's n/8 scales at or above these sizes is 1/shrink.
        width, height = -(-width // shrink), -(-height // shrink)
        if width * height > MAX_PIXELS:
            return None
        pixels = simplejpeg.decode_jpeg(data, colorspace=mode, min_width=width,
                                        min_height=height, strict=True)
    except (KeyError, ValueError):
        return None
    if pixels.shape[:2] != (height, width):
        return None
    # Wrapped in a copy: images made from it by libvips operations keep the array alive, but
    # pyvips' copy_memory() of the wrapper itself returns it without that reference.
    image = pyvips.Image.new_from_memory(pixels.data, width, height, bands, "uchar").copy()
    if profile and not profiles.is_srgb(profile):
        # What libvips' loader would attach; an sRGB one is left off, as to_srgb skips it.
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)
    if orientation != 1:
        image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
        image = image.autorot()
    return image
