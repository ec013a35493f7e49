"""Video's pure parts: container sniffing, output choice, trims, plans, the ladder, cache files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pixelport.cache.disk import DiskTier
from pixelport.cache.entry import BodyFile, Entry
from pixelport.errors import InvalidRequest, LimitExceeded, PixelportError
from pixelport.transform import registry
from pixelport.transform.step import Step
from pixelport.video import containers, ladder, plan
from pixelport.video.probe import VideoInfo

INFO = VideoInfo("mov", 1280, 720, 6.0, 0, "h264", "aac", 1_000_000, 30.0, 180)


def steps(text: str) -> list[Step]:
    return [s for s in registry.parse(text) if isinstance(s, Step)]


@pytest.mark.parametrize(("head", "demuxer"), [
    (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "mov"),
    (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", "mov"),
    (b"\x00\x00\x00\x08moov", "mov"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01", "matroska"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", "avi"),
    (b"OggS\x00\x02", "ogg"),
    (b"FLV\x01\x05", "flv"),
    (b"\x00\x00\x01\xba\x44", "mpeg"),
    (bytes([0x47]) + b"\x00" * 187 + bytes([0x47]) + b"\x00" * 187 + bytes([0x47]) + b"\x00" * 9,
     "mpegts"),
    (b"GIF89a\x10\x00", "gif"),
    # Not videos: images in ISO-BMFF, playlists, concat scripts, pages, nothing.
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", None),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", None),
    (b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n", None),
    (b"ffconcat version 1.0\nfile '/etc/passwd'\n", None),
    (b"file '/etc/passwd'\n", None),
    (b"<!doctype html><html>", None),
    (b"", None),
])
def test_containers_are_sniffed(head: bytes, demuxer: str | None) -> None:
    assert containers.sniff(head) == demuxer


@pytest.mark.parametrize(("chain", "accept", "expected"), [
    ("", "", ("mp4", "h264", "aac", True)),
    ("", "video/webm", ("webm", "vp9", "opus", True)),
    ("f-mp4", "video/webm", ("mp4", "h264", "aac", False)),
    ("f-webm", "", ("webm", "vp9", "opus", False)),
    ("vc-av1", "", ("webm", "av1", "opus", False)),
    ("ac-opus", "", ("webm", "vp9", "opus", False)),
    ("vc-h264", "video/webm", ("mp4", "h264", "aac", False)),
    ("vc-none", "", ("mp4", None, "aac", True)),
    ("f-webm,ac-none", "", ("webm", "vp9", None, False)),
    ("f-mp4,vc-none,ac-aac", "", ("mp4", None, "aac", False)),
])
def test_output_choice(chain: str, accept: str, expected: tuple[object, ...]) -> None:
    output = plan.choose_output(steps(chain), accept, True)
    assert (output.container, output.video_codec, output.audio_codec,
            output.negotiated) == expected


@pytest.mark.parametrize(("chain", "named"), [
    ("f-mp4,vc-vp9", "vc-vp9"), ("f-webm,vc-h264", "vc-h264"), ("f-mp4,ac-opus", "ac-opus"),
    ("vc-h264,ac-opus", "vc-h264"), ("vc-none,ac-none", "nothing"), ("f-png", "f-png"),
])
def test_invalid_combinations_name_the_parameter(chain: str, named: str) -> None:
    with pytest.raises(InvalidRequest, match=named):
        plan.choose_output(steps(chain), "", True)


@pytest.mark.parametrize(("chain", "start", "end"), [
    ("", 0.0, None), ("so-1.5", 1.5, None), ("eo-2", 0.0, 2.0), ("so-1,du-2", 1.0, 3.0),
    ("so-1,eo-4,du-1", 1.0, 4.0),  # eo wins over du
    ("du-10", 0.0, None),  # past the end: to the end
    ("so-idu_div_3", 2.0, None), ("so-1,du-idu_sub_2", 1.0, 5.0),
])
def test_trims(chain: str, start: float, end: float | None) -> None:
    cut = plan.trim(steps(chain), 6.0)
    assert (cut.start, cut.end) == (start, end)


@pytest.mark.parametrize("chain", ["so-6", "so-7.5", "so-2,eo-1", "du-idu_sub_7"])
def test_trims_outside_the_video_are_refused(chain: str) -> None:
    with pytest.raises(InvalidRequest):
        plan.trim(steps(chain), 6.0)


def test_plan_command_confines_the_input(tmp_path: Path) -> None:
    planned = plan.plan(registry.parse("w-640,so-1,du-2,q-80"), INFO, "", True, 10**8)
    args = planned.args(tmp_path / "in", "mov", tmp_path / "out.mp4", [])
    joined = " ".join(args)
    assert "-protocol_whitelist file -f mov -enable_drefs 0" in joined
    assert f"-i file:{tmp_path / 'in'}" in joined
    assert args[:4] == ["-ss", "1.000", "-to", "3.000"]
    assert "-crf 16" in joined  # q-80 onto x264's 35..11
    assert (planned.width, planned.height) == (640, 360)


def test_output_pixel_limit() -> None:
    with pytest.raises(LimitExceeded):
        plan.plan(registry.parse("w-1280"), INFO, "", True, 1280 * 719)


VIDEO_PARAMS = st.sampled_from([
    "w-320", "w-0.5", "h-240", "h-ih_div_2", "ar-4-3", "c-force", "c-at_max", "c-at_least",
    "cm-pad_resize", "cm-extract", "fo-top_left", "fo-bottom", "bg-FF0000", "bg-blurred",
    "bg-blurred_30_N20", "b-4_00FF00", "r-20", "r-max", "rt-90", "rt-270", "rt-360", "q-1",
    "q-100", "f-mp4", "f-webm", "f-auto", "vc-h264", "vc-vp9", "vc-av1", "vc-none", "ac-aac",
    "ac-opus", "ac-none", "so-1", "eo-3.5", "du-2", "so-idu_mul_0.5", "e-grayscale", "bl-10",
    "fo-face", "cm-pad_extract", "rt-45", "w-99999", "sr-240"])


@given(st.lists(st.lists(VIDEO_PARAMS, min_size=1, max_size=5), min_size=1, max_size=3))
@example([["w-1", "h-1", "b-3_000000", "r-max"]])
@example([["cm-extract", "w-5000", "h-5000"]])
def test_any_chain_plans_or_is_a_clear_400(chain: list[list[str]]) -> None:
    """Every chain of video parameters either plans (even sides, within the limit) or is
    refused with a PixelportError: never another exception."""
    text = ":".join(",".join(step) for step in chain)
    try:
        planned = plan.plan(registry.parse(text), INFO, "video/webm", True, 10**8)
    except PixelportError as error:
        assert error.status == 400
        return
    assert planned.width % 2 == 0 and planned.height % 2 == 0
    assert planned.width > 0 and planned.height > 0


def test_the_ladder_keeps_the_aspect_ratio_and_never_upscales() -> None:
    def sizes(width: int, height: int, heights: tuple[int, ...]) -> list[tuple[int, int]]:
        info = VideoInfo("mov", width, height, 6.0, 0, "h264", None, 0, 30.0, 0)
        return [(r.width, r.height) for r in ladder.ladder(info, heights)]

    assert sizes(1920, 1080, (240, 360, 480, 720, 1080)) == [
        (426, 240), (640, 360), (854, 480), (1280, 720), (1920, 1080)]
    assert sizes(1280, 720, (240, 1080, 2160)) == [(426, 240), (1280, 720)]  # once, not up
    assert sizes(1080, 1920, (240, 720)) == [(136, 240), (404, 720)]  # portrait: in the box
    assert sizes(320, 240, (240, 360)) == [(320, 240)]
    rungs = ladder.ladder(INFO, (240, 720))
    assert [r.bit_rate for r in rungs] == [200_000, 3_300_000]


@pytest.mark.parametrize(("chain", "message"), [
    ("sr-240,w-100", "w-100"), ("sr-240,f-mp4", "f-mp4"), ("sr-240,vc-h264", "vc-h264"),
    ("sr-240,q-50", "q-50"), ("w-100", "w-100"), ("", "sr-"), ("so-1", "sr-"),
])
def test_stream_chains(chain: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        ladder.resolutions(registry.parse(chain))


def test_stream_manifests_name_their_parts_under_the_ladder() -> None:
    master = ('#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",URI="media_2.m3u8"\n'
              '#EXT-X-STREAM-INF:BANDWIDTH=1\nmedia_0.m3u8\n')
    assert ladder.rewrite_hls(master, "ik-abs/x/") == (
        '#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",URI="ik-abs/x/media_2.m3u8"\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=1\nik-abs/x/media_0.m3u8\n')
    mpd = '<MPD>\n\t<Period id="0" start="PT0.0S">\n\t\t<AdaptationSet/>'
    assert "<Period id=\"0\" start=\"PT0.0S\">\n\t\t<BaseURL>ik-abs/x/</BaseURL>" in \
        ladder.rewrite_dash(mpd, "ik-abs/x/")
    assert ladder.part_key("a", "b") != ladder.part_key("a", "c")


def test_a_body_kept_on_disk_round_trips_and_a_short_one_is_a_miss(tmp_path: Path) -> None:
    source = tmp_path / "made.mp4"
    source.write_bytes(b"v" * 300_000)
    tier = DiskTier(tmp_path / "cache", 10**9)
    entry = Entry(b"", {"content-type": "video/mp4"}, '"e"', "", "clip.mp4",
                  body_file=BodyFile(source, 0, 300_000))

    async def run() -> None:
        ticket = tier.begin("k" * 40)
        tier.write_file(ticket, entry)
        await tier.finish(ticket, entry)
        assert entry.body_file is not None and entry.body_file.path != source  # the cache's
        read = await tier.get("k" * 40)
        assert read is not None and read.body == b"" and read.body_file is not None
        with read.body_file.path.open("rb") as handle:
            handle.seek(read.body_file.offset)
            assert handle.read() == b"v" * 300_000
        # Cut short (a disk fault): the length in the head no longer matches: a miss.
        with read.body_file.path.open("r+b") as handle:
            handle.truncate(read.body_file.offset + 10)
        assert await tier.get("k" * 40) is None
        tier.close()

    asyncio.run(run())
