"""Videos from the URL, end to end: results probed by a real decoder (PyAV), pixels checked."""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy
import pytest

from pixelport.security.signing import sign_url
from pixelport.video.claims import Claims
from tests.helpers import OriginServer, decode
from tests.video_media import frame_pixels, make_clip, make_gif, probe_bytes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A library folder holding test videos (made once per module)."""
    root = tmp_path_factory.mktemp("videos")
    make_clip(root / "clip.mp4")
    make_clip(root / "silent.mp4", audio=False)
    make_clip(root / "turned.mp4", rotation=90)
    make_clip(root / "long.mp4", width=64, height=48, seconds=6, audio=False)
    make_gif(root / "anim.gif")
    (root / "page.mp4").write_bytes(b"<!doctype html><html><body>not a video</body></html>")
    whole = (root / "clip.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(whole[: len(whole) // 3])
    (root / "noext").write_bytes(whole)
    return root


def video_config(library: Path, **sections: Any) -> dict[str, Any]:
    return {"library": {"dir": str(library)}, "security": {"private_key": "video_key"},
            **sections}


@pytest.fixture
def server(serve: Any, media: Path) -> Any:
    return serve(video_config(media))


def test_resize_keeps_codecs_duration_and_audio(server: Any, tmp_path: Path) -> None:
    answer = server.get("/clip.mp4?tr=w-160")
    assert answer.status == 200, answer.ik_error
    assert answer.headers["content-type"] == "video/mp4"
    assert "transformation;dur=" in answer.headers["server-timing"]
    probed = probe_bytes(answer.body, tmp_path)
    assert (probed.width, probed.height) == (160, 120)
    assert (probed.video_codec, probed.audio_codec) == ("h264", "aac")
    assert abs(probed.duration - 2.0) < 0.15
    assert probed.frames == 50
    again = server.get("/tr:w-160/clip.mp4")  # the path form is the same result
    assert again.status == 200 and "cache;desc=hit" in again.headers["server-timing"]
    assert again.body == answer.body


def test_trims_and_audio_removed(server: Any, tmp_path: Path) -> None:
    trimmed = probe_bytes(server.get("/clip.mp4?tr=so-0.5,du-1").body, tmp_path)
    assert abs(trimmed.duration - 1.0) < 0.15 and abs(trimmed.frames - 25) <= 1
    ended = probe_bytes(server.get("/clip.mp4?tr=eo-0.8,ac-none").body, tmp_path)
    assert abs(ended.duration - 0.8) < 0.15
    assert ended.audio_codec is None and ended.video_codec == "h264"
    # Expressions on the input's duration: the second half.
    half = probe_bytes(server.get("/clip.mp4?tr=so-idu_div_2").body, tmp_path)
    assert abs(half.duration - 1.0) < 0.15


def test_audio_only_and_webm_codecs(server: Any, tmp_path: Path) -> None:
    audio = server.get("/clip.mp4?tr=vc-none")
    assert audio.status == 200 and audio.headers["content-type"] == "audio/mp4"
    assert probe_bytes(audio.body, tmp_path).video_codec is None
    webm = server.get("/clip.mp4?tr=f-webm,w-96")
    assert webm.headers["content-type"] == "video/webm"
    probed = probe_bytes(webm.body, tmp_path)
    assert (probed.video_codec, probed.audio_codec) == ("vp9", "opus")
    av1 = probe_bytes(server.get("/clip.mp4?tr=vc-av1,w-96,du-0.5").body, tmp_path)
    assert av1.video_codec in ("libdav1d", "av1", "libaom-av1")
    assert av1.container.startswith("matroska")


def test_format_negotiated_by_accept(server: Any) -> None:
    webm = server.get("/clip.mp4?tr=w-64,f-auto", {"Accept": "video/webm,video/*;q=0.9"})
    plain = server.get("/clip.mp4?tr=w-64,f-auto", {"Accept": "*/*"})
    assert webm.headers["content-type"] == "video/webm"
    assert plain.headers["content-type"] == "video/mp4"
    assert webm.headers["vary"] == plain.headers["vary"] == "Accept"
    fixed = server.get("/clip.mp4?tr=w-64,f-mp4", {"Accept": "video/webm"})
    assert fixed.headers["content-type"] == "video/mp4" and "vary" not in fixed.headers


@pytest.mark.parametrize(("chain", "size"), [
    ("w-200,h-100", (200, 100)),  # maintain_ratio: cover, then cut
    ("w-200,h-100,c-force", (200, 100)),
    ("w-200,h-100,c-at_max", (133, 100)),  # 320x240 scaled by 0.417
    ("w-100,h-100,c-at_least", (133, 100)),
    ("w-100,h-100,cm-pad_resize", (100, 100)),
    ("w-100,h-80,cm-extract,fo-top_left", (100, 80)),
    ("h-120,ar-1-1", (120, 120)),
    ("w-100,rt-90", (74, 100)),
    ("w-100,b-6_00FF00", (112, 86)),  # 100x75 made even, then the border
])
def test_geometry(server: Any, tmp_path: Path, chain: str, size: tuple[int, int]) -> None:
    answer = server.get(f"/silent.mp4?tr={chain},du-0.2")
    assert answer.status == 200, answer.ik_error
    probed = probe_bytes(answer.body, tmp_path)
    expected = (size[0] - size[0] % 2, size[1] - size[1] % 2)  # 4:2:0 needs even sides
    assert (probed.width, probed.height) == expected


def test_pad_colour_blurred_background_and_corners(server: Any, tmp_path: Path) -> None:
    padded = server.get("/silent.mp4?tr=w-100,h-100,cm-pad_resize,bg-FF0000,du-0.2")
    pixels = frame_pixels(padded.body, tmp_path)
    assert pixels.shape[:2] == (100, 100)
    assert numpy.allclose(pixels[2, 50], [255, 0, 0], atol=40)  # the bar above the video
    blurred = frame_pixels(server.get(
        "/silent.mp4?tr=w-100,h-100,cm-pad_resize,bg-blurred,du-0.2").body, tmp_path)
    assert pixels[2, 50].tolist() != blurred[2, 50].tolist()
    corners = frame_pixels(server.get("/silent.mp4?tr=w-120,r-30,bg-0000FF,du-0.2").body,
                           tmp_path)
    square = frame_pixels(server.get("/silent.mp4?tr=w-120,du-0.2").body, tmp_path)
    assert numpy.allclose(corners[1, 1], [0, 0, 255], atol=40)  # outside the rounded corner
    assert not numpy.allclose(square[1, 1], [0, 0, 255], atol=40)
    assert numpy.allclose(corners[45, 60], square[45, 60], atol=12)  # the video itself


def test_rotated_input_is_upright(server: Any, tmp_path: Path) -> None:
    probed = probe_bytes(server.get("/turned.mp4?tr=h-160").body, tmp_path)
    assert (probed.width, probed.height) == (120, 160)  # displayed 240x320, scaled


def test_ranges_and_validators_on_cached_results(server: Any) -> None:
    whole = server.get("/clip.mp4?tr=w-128")
    assert whole.status == 200 and whole.headers["accept-ranges"] == "bytes"
    part = server.get("/clip.mp4?tr=w-128", {"Range": "bytes=100-1099"})
    assert part.status == 206
    assert part.headers["content-range"] == f"bytes 100-1099/{len(whole.body)}"
    assert part.body == whole.body[100:1100]
    tail = server.get("/clip.mp4?tr=w-128", {"Range": "bytes=-10"})
    assert tail.body == whole.body[-10:]
    outside = server.get("/clip.mp4?tr=w-128", {"Range": f"bytes={len(whole.body)}-"})
    assert outside.status == 416
    same = server.get("/clip.mp4?tr=w-128", {"If-None-Match": whole.headers["etag"]})
    assert same.status == 304 and same.body == b""
    head = server.get("/clip.mp4?tr=w-128", method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == str(len(whole.body))


def test_thumbnails(server: Any, media: Path, tmp_path: Path) -> None:
    first = server.get("/clip.mp4/ik-thumbnail.jpg", {"Accept": "image/jpeg"})
    assert first.status == 200 and first.headers["content-type"] == "image/jpeg"
    assert (decode(first.body).width, decode(first.body).height) == (320, 240)
    small = server.get("/tr:w-100,h-100,cm-pad_resize,bg-FF0000/clip.mp4/ik-thumbnail.jpg")
    image = decode(small.body)
    assert (image.width, image.height) == (100, 100)
    assert [round(v) for v in image.getpoint(50, 2)][:3] == pytest.approx([255, 0, 0], abs=40)
    # The frame at so-: the pattern moves, so it differs from the first and matches the
    # decoder's own frame at that time.
    later = decode(server.get("/clip.mp4/ik-thumbnail.jpg?tr=so-1.2,f-png").body)
    expected = frame_pixels((media / "clip.mp4").read_bytes(), tmp_path, 1.2)
    got = numpy.ndarray(buffer=later.write_to_memory(), dtype=numpy.uint8,
                        shape=(later.height, later.width, later.bands))[:, :, :3]
    assert numpy.abs(got.astype(int) - expected.astype(int)).mean() < 3
    earlier = frame_pixels((media / "clip.mp4").read_bytes(), tmp_path, 0)
    assert numpy.abs(got.astype(int) - earlier.astype(int)).mean() > 3
    webp = server.get("/clip.mp4/ik-thumbnail.jpg", {"Accept": "image/webp,*/*"})
    assert webp.headers["content-type"] == "image/webp" and "Accept" in webp.headers["vary"]
    turned = decode(server.get("/turned.mp4/ik-thumbnail.jpg").body)
    assert (turned.width, turned.height) == (240, 320)
    refused = server.get("/clip.mp4/ik-thumbnail.jpg?tr=e-grayscale")
    assert refused.status == 400 and "e-grayscale" in refused.ik_error


def test_gif_to_video_and_extensionless_video(server: Any, media: Path, tmp_path: Path) -> None:
    answer = server.get("/anim.gif/ik-gif-video.mp4")
    assert answer.status == 200 and answer.headers["content-type"] == "video/mp4"
    probed = probe_bytes(answer.body, tmp_path)
    assert (probed.width, probed.height, probed.video_codec) == (160, 120, "h264")
    assert probed.audio_codec is None and probed.frames == 10
    first_frame = decode(server.get("/anim.gif/ik-thumbnail.jpg?tr=w-80").body)
    assert (first_frame.width, first_frame.height) == (80, 60)  # a GIF's first frame
    not_gif = server.get("/clip.mp4/ik-gif-video.mp4")
    assert not_gif.status == 400 and not_gif.ik_error.startswith("EFORMAT")
    marked = server.get("/noext/ik-video.mp4?tr=w-80")
    assert marked.status == 200 and probe_bytes(marked.body, tmp_path).width == 80
    untouched = server.get("/noext/ik-video.mp4")
    assert untouched.status == 200 and untouched.body == (media / "noext").read_bytes()


@pytest.mark.parametrize(("target", "code", "words"), [
    ("/clip.mp4?tr=e-grayscale", "EINVALID", "e-grayscale"),
    ("/clip.mp4?tr=vc-vp9,f-mp4", "EINVALID", "vc-vp9"),
    ("/clip.mp4?tr=ac-opus,vc-h264", "EINVALID", "ac-opus"),
    ("/clip.mp4?tr=vc-none,ac-none", "EINVALID", "nothing"),
    ("/clip.mp4?tr=f-jpg", "EINVALID", "f-jpg"),
    ("/clip.mp4?tr=rt-45", "EINVALID", "rt-45"),
    ("/clip.mp4?tr=fo-face", "EINVALID", "fo-face"),
    ("/clip.mp4?tr=cm-pad_extract,w-10,h-10", "EINVALID", "pad_extract"),
    ("/clip.mp4?tr=so-5", "EINVALID", "so-5"),
    ("/clip.mp4?tr=so-1.234", "EINVALID", "two decimals"),
    ("/clip.mp4?tr=eo-1,so-1.5", "EINVALID", "eo-1"),
    ("/clip.mp4?tr=if-iw_gt_1,w-10,if-end", "EINVALID", "Conditional"),
    ("/clip.mp4?tr=sr-999", "EINVALID", "999"),
    ("/page.mp4?tr=w-100", "EFORMAT", "not a video"),
    ("/cut.mp4?tr=w-100", "EFORMAT", ""),
    ("/page.mp4/ik-thumbnail.jpg", "EFORMAT", ""),
    ("/anim.gif?tr=vc-h264", "EINVALID", "vc-h264"),
])
def test_bad_input_is_a_clear_400(server: Any, target: str, code: str, words: str) -> None:
    answer = server.get(target)
    assert answer.status == 400, (answer.status, answer.ik_error)
    assert answer.ik_error.startswith(code) and words in answer.ik_error


def test_limits(serve: Any, media: Path) -> None:
    small = serve(video_config(media, limits={"max_video_bytes": 10_000}))
    refused = small.get("/clip.mp4?tr=w-100")
    assert refused.status == 400 and "max_video_bytes" in refused.ik_error
    short = serve(video_config(media, limits={"max_video_seconds": 3}))
    assert short.get("/clip.mp4?tr=w-100").status == 200
    too_long = short.get("/long.mp4?tr=w-32")
    assert too_long.status == 400 and "max_video_seconds" in too_long.ik_error


def test_crafted_playlists_cannot_read_other_files(serve: Any, tmp_path: Path) -> None:
    """HLS, concat and ffconcat inputs that name other files are refused before ffmpeg runs,
    and ffmpeg itself, given one with our options, reads nothing else."""
    secret = tmp_path / "secret.mp4"
    make_clip(secret, width=64, height=48, seconds=1)
    library = tmp_path / "library"
    library.mkdir()
    (library / "playlist.mp4").write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{secret}\n#EXT-X-ENDLIST\n")
    (library / "concat.mp4").write_text(f"ffconcat version 1.0\nfile '{secret}'\n")
    (library / "list.webm").write_text(f"file '{secret}'\n")
    server = serve(video_config(library))
    for name in ("playlist.mp4", "concat.mp4", "list.webm"):
        for target in (f"/{name}?tr=w-32", f"/{name}/ik-thumbnail.jpg"):
            answer = server.get(target)
            assert answer.status == 400 and answer.ik_error.startswith("EFORMAT"), target
    # ffmpeg with pixelport's input options on the playlist, as if it had passed the sniff.
    from pixelport.video.ffmpeg import executable, input_args

    result = subprocess.run(
        [executable(), "-nostdin", "-loglevel", "error",
         *input_args(library / "playlist.mp4", "mov"), "-f", "null", "-"],
        capture_output=True, timeout=60)
    assert result.returncode != 0


def test_web_origin_video(serve: Any, media: Path, origin: OriginServer, tmp_path: Path) -> None:
    origin.files["/remote/clip.mp4"] = (media / "clip.mp4").read_bytes()
    server = serve({"security": {"allow_private_networks": True},
                    "origin": [{"name": "web", "type": "web_server", "base_url": origin.url}],
                    "endpoint": [{"identifier": "", "origins": ["web"], "library": False}]})
    answer = server.get("/remote/clip.mp4?tr=w-100")
    assert answer.status == 200 and probe_bytes(answer.body, tmp_path).width == 100
    missing = server.get("/remote/none.mp4?tr=w-100")
    assert missing.status == 404 and missing.ik_error.startswith("ENOENT")


def test_slow_jobs_answer_302_or_202_and_finish_in_the_background(
        serve: Any, media: Path, tmp_path: Path) -> None:
    server = serve(video_config(media, video={"wait": 0}))
    moved = server.get("/clip.mp4?tr=w-150&v=2")
    assert moved.status == 302 and moved.headers["location"] == "/clip.mp4?v=2"
    assert moved.headers["cache-control"] == "no-store"
    pending = server.get("/clip.mp4/ik-thumbnail.jpg?tr=w-50")
    assert pending.status == 202 and pending.body == b""
    deadline = time.monotonic() + 60
    while (answer := server.get("/clip.mp4?tr=w-150&v=2")).status == 302:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert answer.status == 200 and probe_bytes(answer.body, tmp_path).width == 150
    while (thumb := server.get("/clip.mp4/ik-thumbnail.jpg?tr=w-50")).status == 202:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert decode(thumb.body).width == 50


def test_redirect_of_a_signed_request_is_signed(serve: Any, media: Path) -> None:
    server = serve(video_config(media, video={"wait": 0},
                                security={"private_key": "video_key",
                                          "require_signed_urls": True}))
    url = sign_url(f"{server.url}/clip.mp4?tr=w-140", f"{server.url}/", "video_key",
                   int(time.time()) + 300)
    moved = server.get(url[len(server.url):])
    assert moved.status == 302
    location = moved.headers["location"]
    assert location.startswith("/clip.mp4?ik-t=") and "ik-s=" in location
    assert server.get(location).status == 200  # the signed original streams


def test_full_queue_is_busy(serve: Any, media: Path) -> None:
    server = serve(video_config(media, video={"wait": 0, "concurrent_jobs": 1,
                                              "queue_length": 0}))
    assert server.get("/long.mp4?tr=w-32,vc-av1").status == 302
    busy = server.get("/long.mp4?tr=w-48,vc-av1")
    assert busy.status == 503 and busy.ik_error.startswith("EBUSY")
    assert int(busy.headers["retry-after"]) > 0


def test_purge_drops_video_results(server: Any) -> None:
    first = server.get("/clip.mp4?tr=w-72")
    assert server.get("/clip.mp4?tr=w-72").headers["server-timing"].endswith("hit")
    auth = "Basic " + base64.b64encode(b"video_key:").decode()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", "/v1/files/purge",
                       json.dumps({"url": f"{server.url}/clip.mp4"}),
                       {"Authorization": auth, "Content-Type": "application/json"})
    assert connection.getresponse().status == 201
    connection.close()
    again = server.get("/clip.mp4?tr=w-72")
    assert again.status == 200 and "miss" in again.headers["server-timing"]
    assert again.body == first.body  # made again, the same


def test_a_claim_is_held_across_processes_and_freed_by_death(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path;"
        "from pixelport.video.claims import Claims;"
        f"fd = Claims(Path({str(tmp_path)!r})).try_claim('k'); assert fd is not None;"
        "print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        claims = Claims(tmp_path)
        assert claims.try_claim("k") is None
        holder.kill()
        holder.wait()
        fd = claims.try_claim("k")
        assert fd is not None
        os.close(fd)
    finally:
        holder.kill()


def test_work_left_by_a_dead_process_is_swept(serve: Any, media: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    leftover = cache / "video" / "work" / "999999999-0"
    leftover.mkdir(parents=True)
    (leftover / "input").write_bytes(b"half")
    server = serve(video_config(media, cache={"dir": str(cache)}))
    assert server.get("/clip.mp4?tr=w-40").status == 200
    assert not leftover.exists()
    assert list((cache / "video" / "work").iterdir()) == []  # the job's own folder went too
    shutil.rmtree(cache)


def test_adaptive_streams(serve: Any, tmp_path: Path) -> None:
    """The first request is 202; then the HLS and DASH manifests (one encode) name every
    rendition, each decodes, keeps the source's aspect ratio and is never upscaled."""
    library = tmp_path / "library"
    library.mkdir()
    make_clip(library / "wide.mp4", width=480, height=270, seconds=5)
    server = serve(video_config(library))
    target = "/wide.mp4/ik-master.m3u8?tr=sr-240_360_480_720"
    first = server.get(target)
    assert first.status == 202 and first.body == b""
    deadline = time.monotonic() + 120
    while (answer := server.get(target)).status == 202:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert answer.headers["access-control-allow-origin"] == "*"
    master = answer.body.decode()
    variants = [line for line in master.splitlines() if line and not line.startswith("#")]
    sizes = sorted(tuple(int(v) for v in line.split("RESOLUTION=")[1].split(",")[0].split("x"))
                   for line in master.splitlines() if "RESOLUTION=" in line)
    # 270p source: 240 and 360 (the source's own size, not upscaled to 640x360); no 480/720.
    assert sizes == [(426, 240), (480, 270)]
    assert all(v.startswith("ik-abs/") for v in variants)
    dash = server.get("/wide.mp4/ik-master.mpd?tr=sr-240_360_480_720")
    assert dash.status == 200 and dash.headers["content-type"] == "application/dash+xml"
    # Every representation of the MPD: its init and first segment, fetched as a DASH player
    # resolves them (BaseURL, then the template), decode.
    namespace = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    mpd = ElementTree.fromstring(dash.body)
    base = mpd.find("d:Period/d:BaseURL", namespace)
    assert base is not None and base.text is not None and base.text.startswith("ik-abs/")
    representations = mpd.findall("d:Period/d:AdaptationSet/d:Representation", namespace)
    assert sorted((int(r.get("width", 0)), int(r.get("height", 0))) for r in representations
                  if r.get("width")) == sizes
    for representation in representations:
        template = representation.find("d:SegmentTemplate", namespace)
        assert template is not None
        ident, number = representation.get("id", ""), int(template.get("startNumber", "1"))
        init = template.get("initialization", "").replace("$RepresentationID$", ident)
        chunk = (template.get("media", "").replace("$RepresentationID$", ident)
                 .replace("$Number%05d$", f"{number:05d}"))
        data = (server.get(f"/wide.mp4/{base.text}{init}").body
                + server.get(f"/wide.mp4/{base.text}{chunk}").body)
        probed = probe_bytes(data, tmp_path, "dash-part")
        if representation.get("mimeType") == "audio/mp4":
            assert probed.audio_codec == "aac"
        else:
            assert probed.frames > 0 and (probed.width, probed.height) in sizes
    for variant in variants:
        playlist = server.get(f"/wide.mp4/{variant}").body.decode()
        folder = variant.rsplit("/", 1)[0]
        init = playlist.split('URI="')[1].split('"')[0]
        segment = next(line for line in playlist.splitlines()
                       if line and not line.startswith("#"))
        data = (server.get(f"/wide.mp4/{folder}/{init}").body
                + server.get(f"/wide.mp4/{folder}/{segment}").body)
        probed = probe_bytes(data, tmp_path)
        assert probed.frames > 0 and probed.video_codec == "h264"
        assert (probed.width, probed.height) in sizes
    # Keyframes aligned: every rendition's segments last the same (4 s, then the rest).
    durations = {tuple(line for line in server.get(f"/wide.mp4/{v}").body.decode().splitlines()
                       if line.startswith("#EXTINF")) for v in variants}
    assert len(durations) == 1
    bad = server.get("/wide.mp4/ik-master.m3u8?tr=sr-240,w-100")
    assert bad.status == 400 and "w-100" in bad.ik_error
    none = server.get("/wide.mp4/ik-master.m3u8")
    assert none.status == 400 and "sr-" in none.ik_error
    forged = server.get("/wide.mp4/ik-abs/" + "0" * 32 + "/init-0.m4s")
    assert forged.status == 404 and forged.ik_error.startswith("ENOENT")


def test_signed_streams_parts_need_no_signature(serve: Any, tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    make_clip(library / "s.mp4", width=320, height=180, seconds=2)
    server = serve(video_config(library, security={"private_key": "video_key",
                                                   "require_signed_urls": True}))
    assert server.get("/s.mp4/ik-master.m3u8?tr=sr-240").status == 401
    url = sign_url(f"{server.url}/s.mp4/ik-master.m3u8?tr=sr-240", f"{server.url}/",
                   "video_key")
    target = url[len(server.url):]
    deadline = time.monotonic() + 60
    while (answer := server.get(target)).status == 202:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert answer.status == 200
    variant = next(line for line in answer.body.decode().splitlines()
                   if line and not line.startswith("#"))
    assert server.get(f"/s.mp4/{variant}").status == 200  # the MAC in the path is the key


def test_the_demo_video(serve: Any, tmp_path: Path) -> None:
    """The demo library's clip (demo/library, read in place) and GIF, as the README shows."""
    demo = Path(__file__).resolve().parent.parent / "demo" / "library"
    # The database in the test's folder: the default (beside the library) would write
    # demo/library.db into the checkout.
    server = serve({"library": {"dir": str(demo)},
                    "database": {"url": f"sqlite:///{tmp_path / 'library.db'}"}})
    small = server.get("/clip.mp4?tr=w-480,so-1,du-3")
    assert small.status == 200, small.ik_error
    probed = probe_bytes(small.body, tmp_path)
    assert (probed.width, probed.height, probed.video_codec, probed.audio_codec) == (
        480, 270, "h264", "aac")
    assert abs(probed.duration - 3) < 0.15
    frame = decode(server.get("/tr:w-300/clip.mp4/ik-thumbnail.jpg").body)
    assert (frame.width, frame.height) == (300, 169)
    gif = probe_bytes(server.get("/coffee-anim.gif/ik-gif-video.mp4").body, tmp_path)
    assert gif.video_codec == "h264" and gif.frames == 6


def test_layers_on_video_and_their_timing(serve: Any, media: Path, tmp_path: Path) -> None:
    """Image, solid and text layers made by libvips and overlaid by ffmpeg; lso/ldu/leo
    bound when they show."""
    import pyvips

    (media / "badge.png").write_bytes(bytes(pyvips.Image.black(40, 20).new_from_image(
        [0, 0, 255]).cast("uchar").copy(interpretation="srgb").pngsave_buffer()))
    server = serve(video_config(media))
    answer = server.get("/silent.mp4?tr=w-160,l-image,i-badge.png,lx-10,ly-10,l-end,"
                        "l-image,i-ik_canvas,bg-FF0000,w-30,h-30,lx-N0,ly-N0,lso-0.5,ldu-0.5,"
                        "l-end,du-1.6")
    assert answer.status == 200, answer.ik_error
    probed = probe_bytes(answer.body, tmp_path)
    assert (probed.width, probed.height) == (160, 120)
    first = frame_pixels(answer.body, tmp_path, 0.1)
    middle = frame_pixels(answer.body, tmp_path, 0.8)
    late = frame_pixels(answer.body, tmp_path, 1.4)
    for frame in (first, middle, late):  # the badge all along (row, column)
        assert numpy.allclose(frame[20, 30], [0, 0, 255], atol=40)
    assert numpy.allclose(middle[105, 145], [255, 0, 0], atol=40)  # the block at 0.5-1.0 s
    assert not numpy.allclose(first[105, 145], [255, 0, 0], atol=40)
    assert not numpy.allclose(late[105, 145], [255, 0, 0], atol=40)
    text = server.get("/silent.mp4?tr=w-160,l-text,i-Hello,fs-20,co-FFFFFF,bg-000000,pa-8,"
                      "lx-0,ly-0,l-end,du-0.3")
    assert text.status == 200, text.ik_error
    assert numpy.allclose(frame_pixels(text.body, tmp_path, 0.1)[3, 3], [0, 0, 0], atol=30)
    thumb = server.get("/silent.mp4/ik-thumbnail.jpg?tr=w-160,l-image,i-badge.png,lx-10,ly-10,"
                       "l-end,f-png")
    assert thumb.status == 200, thumb.ik_error
    assert decode(thumb.body)(30, 20)[:3] == [0, 0, 255]
    for bad, words in (("l-image,i-ik_canvas,lm-multiply,l-end", "lm-multiply"),
                       ("l-video,i-clip.mp4,l-end", "l-video"),
                       ("l-image,i-nowhere.png,l-end", "nowhere.png"),
                       ("l-image,i-ik_canvas,lso-1,leo-0.5,l-end", "ends before")):
        refused = server.get(f"/silent.mp4?tr={bad}")
        assert refused.status in (400, 404) and words in refused.ik_error, refused.ik_error
