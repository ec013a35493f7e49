"""Which containers pixelport hands to ffmpeg, recognised from their first bytes.

ffmpeg guesses a demuxer from a file's content and name, and some demuxers read other files
or URLs named inside the input: HLS playlists, concat scripts, image sequences, `.ffconcat`,
SDP, and QuickTime's data references. So nothing is left to its guess: a file is sniffed here
first, only real media containers pass, and the demuxer is named explicitly (`-f`, PyAV's
`format=`), with the protocols limited to the one local file (`ffmpeg.input_args`). A text
playlist named `clip.mp4` is then refused before ffmpeg sees it.
"""

from __future__ import annotations

from pixelport.errors import UnsupportedFormat

HEAD_BYTES = 1024
# Brands of still images in an ISO-BMFF box (AVIF, HEIC): images, not videos.
_IMAGE_BRANDS = {b"avif", b"avis", b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis",
                 b"mif1", b"msf1"}
# QuickTime files that do not open with `ftyp` open with one of these atoms.
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
# Demuxer options that keep a container to its own bytes (QuickTime's external references).
DEMUXER_OPTIONS = {"mov": {"enable_drefs": "0", "use_absolute_path": "0"}}


def sniff(head: bytes) -> str | None:
    """The ffmpeg demuxer for a video (or an animated GIF) from its first bytes, else None."""
    if head[4:8] == b"ftyp":
        brands = {head[8:12]} | {head[i:i + 4] for i in range(16, min(len(head), 64), 4)}
        major_image = head[8:12] in _IMAGE_BRANDS
        return None if major_image or (brands & _IMAGE_BRANDS and b"isom" not in brands
                                       and b"mp42" not in brands) else "mov"
    if head[4:8] in _QUICKTIME_ATOMS and int.from_bytes(head[:4], "big") >= 8:
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"  # Matroska and WebM
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"FLV\x01"):
        return "flv"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg"  # MPEG program stream
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "mpegts"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def demuxer_for(head: bytes, what: str) -> str:
    """`sniff`, or EFORMAT naming the file."""
    found = sniff(head)
    if found is None:
        raise UnsupportedFormat(f"The file {what!r} is not a video that can be decoded")
    return found
