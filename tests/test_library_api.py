"""The media library through ImageKit's Python SDK (imagekitio), on SQLite and PostgreSQL:
uploads, details, tags, copy/move/rename, versions, metadata, folders, bulk jobs, listing
and search, custom metadata fields, named transformations, and delivery following each change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import imagekitio
import jwt
import pytest

from tests.helpers import OriginServer, Pixelport, decode, make_image
from tests.library_support import (
    PRIVATE_KEY,
    PUBLIC_KEY,
    Library,
    client,
    library_config,
    row_count,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def lib(tmp_path: Path, database_url: str) -> Iterator[Library]:
    root = tmp_path / "library"
    root.mkdir()
    (root / "legacy.jpg").write_bytes(make_image(300, 200))
    pp = Pixelport(library_config(root, database_url,
                                  limits={"max_upload_bytes": "2MB"}), base=tmp_path)
    try:
        yield Library(pp, root, client(pp), database_url)
    finally:
        pp.stop()


def upload(lib: Library, name: str = "photo.jpg", data: bytes | None = None,
           **options: Any) -> Any:
    return lib.client.files.upload(file=data if data is not None else make_image(640, 480),
                                   file_name=name, **options)


# -- upload ------------------------------------------------------------------------------


def test_upload_binary_answers_imagekits_object_and_is_served(lib: Library) -> None:
    result = upload(lib, "my photo (1).jpg", folder="/shop/shoes", tags=["red", "sale"],
                    custom_coordinates="10,20,100,50", description="a shoe")
    assert len(result.file_id) == 24 and all(c in "0123456789abcdef" for c in result.file_id)
    assert result.name.startswith("my_photo__1__") and result.name.endswith(".jpg")
    assert len(result.name) == len("my_photo__1_.jpg") + 10  # "_" and 9 random characters
    assert result.file_path == f"/shop/shoes/{result.name}"
    assert result.url == f"{lib.pp.url}/shop/shoes/{result.name}"
    assert (result.width, result.height, result.file_type) == (640, 480, "image")
    assert result.tags == ["red", "sale"]
    assert result.custom_coordinates == "10,20,100,50"
    assert result.version_info.name == "Version 1" and result.version_info.id == result.file_id
    served = lib.get(result.url)
    assert served.status == 200 and (decode(served.body).width, decode(served.body).height) \
        == (640, 480)
    thumb = lib.get(result.thumbnail_url)
    assert thumb.status == 200 and decode(thumb.body).width <= 400
    folders = lib.client.assets.list(type="folder")
    assert {f.folder_path for f in folders} >= {"/shop", "/shop/shoes"}


def test_upload_base64_and_url(lib: Library) -> None:
    """`file` as a text field: base64, or a URL fetched by the server (the Python SDK sends
    bytes only; the JavaScript SDKs and plain HTTP clients send these)."""
    def post(file: str, name: str) -> httpx.Response:
        return httpx.post(f"{lib.pp.url}/api/v1/files/upload", auth=(PRIVATE_KEY, ""),
                          data={"file": file, "fileName": name, "useUniqueFileName": "false"})

    data = make_image(120, 90, ".png")
    result = post(base64.b64encode(data).decode(), "b64.png").json()
    assert (result["width"], result["height"], result["filePath"]) == (120, 90, "/b64.png")
    origin = OriginServer().start()
    try:
        origin.files["/remote.jpg"] = make_image(200, 100)
        fetched = post(f"{origin.url}/remote.jpg", "remote.jpg").json()
        assert (fetched["width"], fetched["height"]) == (200, 100)
        missing = post(f"{origin.url}/nothing-here.jpg", "missing.jpg")
        assert missing.status_code == 400 and "could not be fetched" in missing.json()["message"]
    finally:
        origin.stop()


def test_upload_without_unique_name_overwrites_as_a_new_version(lib: Library) -> None:
    first = upload(lib, "cover.jpg", make_image(400, 300), use_unique_file_name=False,
                   tags=["old"])
    before = lib.get("/tr:w-100/cover.jpg")
    assert decode(before.body).height == 75
    second = upload(lib, "cover.jpg", make_image(400, 200), use_unique_file_name=False)
    assert second.file_id == first.file_id
    assert second.version_info.name == "Version 2" and second.version_info.id != first.file_id
    assert second.tags is None  # overwriteTags defaults to true
    after = lib.get("/tr:w-100/cover.jpg")
    assert decode(after.body).height == 50, "a cached result of the old version was served"
    versions = lib.client.files.versions.list(first.file_id)
    assert [v.version_info.name for v in versions] == ["Version 1", "Version 2"]
    assert all(v.type == "file-version" for v in versions)
    with pytest.raises(imagekitio.ConflictError):
        upload(lib, "cover.jpg", use_unique_file_name=False, overwrite_file=False)
    kept = upload(lib, "cover.jpg", make_image(400, 200), use_unique_file_name=False,
                  overwrite_tags=False)
    assert kept.version_info.name == "Version 3"


def test_versions_get_restore_delete(lib: Library) -> None:
    first = upload(lib, "v.jpg", make_image(300, 300), use_unique_file_name=False)
    upload(lib, "v.jpg", make_image(300, 150), use_unique_file_name=False)
    assert decode(lib.get("/tr:w-60/v.jpg").body).height == 30
    one = lib.client.files.versions.get(first.file_id, file_id=first.file_id)
    assert one.version_info.name == "Version 1"
    restored = lib.client.files.versions.restore(first.file_id, file_id=first.file_id)
    assert restored.height == 300 and restored.version_info.name == "Version 1"
    assert decode(lib.get("/tr:w-60/v.jpg").body).height == 60, "restore did not purge"
    current = lib.client.files.get(first.file_id)
    with pytest.raises(imagekitio.BadRequestError):
        lib.client.files.versions.delete(current.version_info.id, file_id=first.file_id)
    other = next(v for v in lib.client.files.versions.list(first.file_id)
             if v.version_info.id != current.version_info.id)
    lib.client.files.versions.delete(other.version_info.id, file_id=first.file_id)
    assert len(lib.client.files.versions.list(first.file_id)) == 1
    with pytest.raises(imagekitio.NotFoundError):
        lib.client.files.versions.get("0" * 24, file_id=first.file_id)


def test_obj_version_serves_that_version(lib: Library) -> None:
    first = upload(lib, "ov.jpg", make_image(400, 300), use_unique_file_name=False)
    second = upload(lib, "ov.jpg", make_image(400, 200), use_unique_file_name=False)
    old, current = first.version_info.id, second.version_info.id
    assert old != current
    assert decode(lib.get("/tr:w-100/ov.jpg").body).height == 50
    for _ in range(2):  # made, then from the cache: the version is part of the result's key
        versioned = lib.get(f"/tr:w-100/ov.jpg?ik-obj-version={old}")
        assert versioned.status == 200, versioned.headers.get("ik-error")
        assert decode(versioned.body).height == 75
        assert decode(lib.get("/tr:w-100/ov.jpg").body).height == 50
    original = lib.get(f"/ov.jpg?tr=orig-true&ik-obj-version={old}")
    assert (decode(original.body).width, decode(original.body).height) == (400, 300)
    assert decode(lib.get(f"/ov.jpg?ik-obj-version={current}&tr=w-100").body).height == 50
    unknown = lib.get("/ov.jpg?ik-obj-version=" + "0" * 24)
    assert unknown.status == 404
    assert unknown.headers["ik-error"].startswith("ENOENT - ") and "version" in \
        unknown.headers["ik-error"]
    # A file of the folder the API never indexed has no versions: the parameter is ignored.
    assert lib.get("/legacy.jpg?ik-obj-version=" + old).status == 200
    # A deleted version is gone from delivery too (its cached results are purged).
    lib.client.files.versions.delete(old, file_id=first.file_id)
    assert lib.get(f"/tr:w-100/ov.jpg?ik-obj-version={old}").status == 404


def test_obj_version_with_saved_originals(tmp_path: Path, database_url: str) -> None:
    """Saved originals keep a version apart from the file's current bytes."""
    root = tmp_path / "saved"
    root.mkdir()
    pp = Pixelport(library_config(root, database_url, cache={"save_originals": True}),
                   base=tmp_path)
    try:
        saved = Library(pp, root, client(pp), database_url)
        first = upload(saved, "sv.jpg", make_image(300, 200), use_unique_file_name=False)
        upload(saved, "sv.jpg", make_image(300, 100), use_unique_file_name=False)
        old = first.version_info.id
        for _ in range(2):
            for target, height in ((f"/tr:w-30/sv.jpg?ik-obj-version={old}", 20),
                                   ("/tr:w-30/sv.jpg", 10),
                                   (f"/tr:w-60/sv.jpg?ik-obj-version={old}", 40),
                                   ("/tr:w-60/sv.jpg", 20)):
                assert decode(saved.get(target).body).height == height, target
    finally:
        pp.stop()


def test_client_side_upload_signature(lib: Library) -> None:
    def signed(token: str, expire: int, signature: str | None = None) -> httpx.Response:
        sig = signature or hmac.new(PRIVATE_KEY.encode(), f"{token}{expire}".encode(),
                                    hashlib.sha1).hexdigest()
        return httpx.post(f"{lib.pp.url}/api/v1/files/upload", data={
            "fileName": "client.jpg", "publicKey": PUBLIC_KEY, "signature": sig,
            "expire": str(expire), "token": token, "useUniqueFileName": "false"},
            files={"file": ("client.jpg", make_image(50, 50))})

    token, expire = str(uuid.uuid4()), int(time.time()) + 600
    ok = signed(token, expire)
    assert ok.status_code == 200, ok.text
    assert ok.json()["filePath"] == "/client.jpg"
    again = signed(token, expire)
    assert again.status_code == 403 and "used already" in again.json()["message"]
    assert signed(str(uuid.uuid4()), expire, "0" * 40).status_code == 403
    assert signed(str(uuid.uuid4()), int(time.time()) - 5).status_code == 403
    assert signed(str(uuid.uuid4()), int(time.time()) + 7200).status_code == 403
    anonymous = httpx.post(f"{lib.pp.url}/api/v1/files/upload", data={"fileName": "x.jpg"},
                           files={"file": ("x.jpg", make_image(10, 10))})
    assert anonymous.status_code == 401
    assert set(anonymous.json()) >= {"message", "help"}
    assert row_count(lib.database_url, "files") == 1


def test_v2_upload_with_a_jwt(lib: Library) -> None:
    def post(fields: dict[str, str], claims: dict[str, Any], key: str = PRIVATE_KEY,
             kid: str = PUBLIC_KEY) -> httpx.Response:
        token = jwt.encode(claims, key, algorithm="HS256", headers={"kid": kid})
        return httpx.post(f"{lib.pp.url}/api/v2/files/upload", data={**fields, "token": token},
                          files={"file": ("j.jpg", make_image(40, 30))})

    now = int(time.time())
    fields = {"fileName": "j.jpg", "folder": "/jwt", "useUniqueFileName": "false"}
    ok = post(fields, {**fields, "iat": now, "exp": now + 600})
    assert ok.status_code == 200, ok.text
    assert ok.json()["filePath"] == "/jwt/j.jpg"
    # A field that differs from the payload, a wrong key, a foreign kid, a long life: refused.
    assert post({**fields, "folder": "/other"}, {**fields, "iat": now, "exp": now + 60}
                ).status_code == 403
    assert post(fields, {**fields, "iat": now, "exp": now + 60}, key="wrong").status_code == 403
    assert post(fields, {**fields, "iat": now, "exp": now + 60}, kid="other").status_code == 403
    assert post(fields, {**fields, "iat": now, "exp": now + 7200}).status_code == 403


def test_v2_token_is_single_use(lib: Library) -> None:
    now = int(time.time())
    fields = {"fileName": "once.jpg"}
    token = jwt.encode({**fields, "iat": now, "exp": now + 600}, PRIVATE_KEY,
                       algorithm="HS256", headers={"kid": PUBLIC_KEY})
    first = httpx.post(f"{lib.pp.url}/api/v2/files/upload", data={**fields, "token": token},
                       files={"file": ("once.jpg", make_image(40, 30))})
    second = httpx.post(f"{lib.pp.url}/api/v2/files/upload", data={**fields, "token": token},
                        files={"file": ("once.jpg", make_image(40, 30))})
    assert (first.status_code, second.status_code) == (200, 403)


def test_bad_uploads_write_nothing(lib: Library) -> None:
    with pytest.raises(imagekitio.BadRequestError):
        upload(lib, "empty.jpg", b"")
    with pytest.raises(imagekitio.BadRequestError):
        upload(lib, "", make_image(10, 10))
    with pytest.raises(imagekitio.BadRequestError):
        upload(lib, "x.jpg", folder="/../../etc")
    with pytest.raises(imagekitio.BadRequestError):
        upload(lib, "x.jpg", custom_coordinates="1,2,three")
    with pytest.raises(imagekitio.BadRequestError):
        upload(lib, "x.jpg", custom_metadata={"undefined": 1})
    too_big = httpx.post(f"{lib.pp.url}/api/v1/files/upload", auth=(PRIVATE_KEY, ""),
                         data={"fileName": "big.bin"},
                         files={"file": ("big.bin", b"\0" * 3_000_000)})
    assert too_big.status_code == 413
    assert "upload limit" in too_big.json()["message"]
    assert row_count(lib.database_url, "files") == 0
    assert lib.blobs() == [], "a refused upload left bytes behind"


def test_upload_limit_is_enforced_while_streaming(lib: Library) -> None:
    """413 comes while the body is still arriving: the client has sent 3 MB of a declared
    20 MB body and waits; the server answers without waiting for the rest."""
    import socket

    head = (b"--x\r\nContent-Disposition: form-data; name=\"fileName\"\r\n\r\nbig.bin\r\n"
            b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n")
    token = base64.b64encode(f"{PRIVATE_KEY}:".encode()).decode()
    with socket.create_connection(("127.0.0.1", lib.pp.port), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/files/upload HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: multipart/form-data; boundary=x\r\n"
                     b"Transfer-Encoding: chunked\r\n"
                     + f"Authorization: Basic {token}\r\n\r\n".encode())
        for part in [head] + [b"\0" * 65536] * 48:  # 3 MB, past the 2 MB limit
            sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"upload limit" in answer
    assert row_count(lib.database_url, "files") == 0
    assert lib.blobs() == []


# -- details, tags, delete -----------------------------------------------------------------


def test_details_update_and_publish(lib: Library) -> None:
    lib.client.custom_metadata_fields.create(name="price", label="Price",
                                             schema={"type": "Number", "minValue": 0})
    result = upload(lib, "d.jpg", use_unique_file_name=False)
    got = lib.client.files.get(result.file_id)
    assert got.file_path == "/d.jpg" and got.mime == "image/jpeg" and got.type == "file"
    updated = lib.client.files.update(result.file_id, tags=["a", "b"], description="new",
                                      custom_metadata={"price": 10})
    assert updated.tags == ["a", "b"] and updated.description == "new"
    assert updated.custom_metadata == {"price": 10}
    with pytest.raises(imagekitio.BadRequestError):
        lib.client.files.update(result.file_id, custom_metadata={"price": -1})
    assert lib.get("/d.jpg").status == 200
    lib.client.files.update(result.file_id, publish={"is_published": False})
    assert lib.get("/d.jpg").status == 404, "an unpublished file was served"
    lib.client.files.update(result.file_id, publish={"is_published": True})
    assert lib.get("/d.jpg").status == 200
    with pytest.raises(imagekitio.NotFoundError):
        lib.client.files.get("f" * 24)


def test_tags_in_bulk(lib: Library) -> None:
    a = upload(lib, "a.jpg", tags=["keep"])
    b = upload(lib, "b.jpg")
    added = lib.client.files.bulk.add_tags(file_ids=[a.file_id, b.file_id], tags=["x", "y"])
    assert set(added.successfully_updated_file_ids) == {a.file_id, b.file_id}
    assert lib.client.files.get(a.file_id).tags == ["keep", "x", "y"]
    lib.client.files.bulk.remove_tags(file_ids=[a.file_id], tags=["x"])
    assert lib.client.files.get(a.file_id).tags == ["keep", "y"]
    lib.client.files.bulk.remove_ai_tags(file_ids=[a.file_id], ai_tags=["none"])
    with pytest.raises(imagekitio.NotFoundError) as missing:
        lib.client.files.bulk.add_tags(file_ids=[a.file_id, "0" * 24], tags=["z"])
    assert missing.value.body["missingFileIds"] == ["0" * 24]  # type: ignore[index]
    assert "z" not in (lib.client.files.get(a.file_id).tags or [])


def test_delete_and_bulk_delete(lib: Library) -> None:
    a = upload(lib, "gone.jpg", use_unique_file_name=False)
    assert lib.get("/tr:w-50/gone.jpg").status == 200
    lib.client.files.delete(a.file_id)
    assert lib.get("/tr:w-50/gone.jpg").status == 404, "a deleted file's result was served"
    with pytest.raises(imagekitio.NotFoundError):
        lib.client.files.get(a.file_id)
    b, c = upload(lib, "b.jpg"), upload(lib, "c.jpg")
    with pytest.raises(imagekitio.NotFoundError) as missing:
        lib.client.files.bulk.delete(file_ids=[b.file_id, "0" * 24])
    assert missing.value.body["missingFileIds"] == ["0" * 24]  # type: ignore[index]
    assert lib.client.files.get(b.file_id).file_id == b.file_id  # all or nothing
    done = lib.client.files.bulk.delete(file_ids=[b.file_id, c.file_id])
    assert set(done.successfully_deleted_file_ids) == {b.file_id, c.file_id}
    assert row_count(lib.database_url, "files") == 0
    assert [p for p in lib.blobs() if "blobs" in p.parts] == []


# -- copy, move, rename ----------------------------------------------------------------------


def test_copy_move_rename(lib: Library) -> None:
    upload(lib, "m.jpg", make_image(200, 100), use_unique_file_name=False, folder="/src")
    lib.client.files.copy(source_file_path="/src/m.jpg", destination_path="/dst")
    copied = lib.client.assets.list(path="/dst")
    assert [f.file_path for f in copied] == ["/dst/m.jpg"]
    assert lib.get("/dst/m.jpg").status == 200 and lib.get("/src/m.jpg").status == 200
    lib.client.files.move(source_file_path="/src/m.jpg", destination_path="/moved")
    assert lib.get("/src/m.jpg").status == 404 and lib.get("/moved/m.jpg").status == 200
    # Onto a file of the same name: appended as its versions.
    upload(lib, "m.jpg", make_image(50, 50), use_unique_file_name=False, folder="/other")
    lib.client.files.copy(source_file_path="/other/m.jpg", destination_path="/dst")
    dst = lib.client.assets.list(path="/dst")[0]
    assert dst.version_info.name == "Version 2" and dst.width == 50
    renamed = lib.client.files.rename(file_path="/moved/m.jpg", new_file_name="n.jpg",
                                      purge_cache=True)
    assert renamed.purge_request_id
    assert lib.get("/moved/m.jpg").status == 404 and lib.get("/moved/n.jpg").status == 200
    upload(lib, "taken.jpg", use_unique_file_name=False, folder="/moved")
    with pytest.raises(imagekitio.ConflictError):
        lib.client.files.rename(file_path="/moved/n.jpg", new_file_name="taken.jpg")
    with pytest.raises(imagekitio.NotFoundError):
        lib.client.files.move(source_file_path="/nope.jpg", destination_path="/x")


# -- metadata -----------------------------------------------------------------------------


def test_metadata_by_id_and_by_url(lib: Library) -> None:
    result = upload(lib, "meta.jpg", make_image(320, 240), use_unique_file_name=False)
    by_id = lib.client.files.metadata.get(result.file_id)
    assert (by_id.width, by_id.height, by_id.format) == (320, 240, "jpg")
    assert by_id.p_hash and len(by_id.p_hash) == 16
    by_url = lib.client.files.metadata.get_from_url(url=f"{lib.pp.url}/meta.jpg")
    assert by_url.p_hash == by_id.p_hash
    # A transformation of it is the result's metadata, not the stored file's.
    resized = lib.client.files.metadata.get_from_url(url=f"{lib.pp.url}/tr:w-100/meta.jpg")
    assert (resized.width, resized.height) == (100, 75)
    queried = lib.client.files.metadata.get_from_url(url=f"{lib.pp.url}/meta.jpg?tr=w-80")
    assert queried.width == 80
    with pytest.raises(imagekitio.NotFoundError):
        lib.client.files.metadata.get_from_url(url=f"{lib.pp.url}/absent.jpg")


def test_metadata_from_url_of_another_origin_and_of_a_transformation(
        tmp_path: Path, database_url: str, origin: OriginServer) -> None:
    """A URL the library does not hold (a web origin's file, a transformed result) is read
    through delivery, in-process; a URL on no endpoint or with nothing behind it is 404."""
    origin.files["/remote/pic.png"] = make_image(200, 100, ".png", alpha=True)
    root = tmp_path / "library"
    root.mkdir()
    config = library_config(root, database_url)
    config["origin"] = [{"name": "web", "type": "web_server", "base_url": origin.url}]
    config["endpoint"] = [{"identifier": "", "origins": ["web"]}]
    pp = Pixelport(config, base=tmp_path)
    try:
        sdk = client(pp)
        remote = sdk.files.metadata.get_from_url(url=f"{pp.url}/remote/pic.png")
        assert (remote.width, remote.height, remote.format) == (200, 100, "png")
        assert remote.has_transparency is True and len(remote.p_hash) == 16
        resized = sdk.files.metadata.get_from_url(url=f"{pp.url}/tr:w-50,f-jpg/remote/pic.png")
        assert (resized.width, resized.height, resized.format) == (50, 25, "jpg")
        query = sdk.files.metadata.get_from_url(url=f"{pp.url}/remote/pic.png?tr=w-40")
        assert query.width == 40
        with pytest.raises(imagekitio.NotFoundError):
            sdk.files.metadata.get_from_url(url=f"{pp.url}/remote/absent.png")
        with pytest.raises(imagekitio.BadRequestError):
            sdk.files.metadata.get_from_url(url="/remote/pic.png")
        # Only this server's endpoints are asked: a URL on another host is resolved as a
        # Host header of this server (here, the default endpoint), never fetched from there.
        other = sdk.files.metadata.get_from_url(url="http://elsewhere.example/remote/pic.png")
        assert other.width == 200
    finally:
        pp.stop()


# -- folders and bulk jobs -----------------------------------------------------------------


def test_folders_and_bulk_jobs(lib: Library) -> None:
    lib.client.folders.create(folder_name="albums", parent_folder_path="/")
    lib.client.folders.create(folder_name="2024", parent_folder_path="/albums")
    upload(lib, "p.jpg", use_unique_file_name=False, folder="/albums/2024")
    job = lib.client.folders.copy(source_folder_path="/albums", destination_path="/backup")
    status = lib.client.folders.job.get(job.job_id)
    assert status.status == "Completed" and status.type == "COPY_FOLDER"
    assert lib.get("/backup/albums/2024/p.jpg").status == 200
    moved = lib.client.folders.move(source_folder_path="/backup/albums",
                                    destination_path="/archive")
    assert lib.client.folders.job.get(moved.job_id).status == "Completed"
    assert lib.get("/backup/albums/2024/p.jpg").status == 404
    assert lib.get("/archive/albums/2024/p.jpg").status == 200
    renamed = lib.client.folders.rename(folder_path="/archive/albums", new_folder_name="old")
    assert lib.client.folders.job.get(renamed.job_id).type == "RENAME_FOLDER"
    assert lib.get("/archive/old/2024/p.jpg").status == 200
    lib.client.folders.delete(folder_path="/archive")
    assert lib.get("/archive/old/2024/p.jpg").status == 404
    assert "/archive" not in {f.folder_path for f in lib.client.assets.list(type="folder")}
    with pytest.raises(imagekitio.NotFoundError):
        lib.client.folders.delete(folder_path="/never")
    with pytest.raises(imagekitio.NotFoundError):
        lib.client.folders.job.get("0" * 24)


# -- listing and search ---------------------------------------------------------------------


def test_list_filters_sort_and_page(lib: Library) -> None:
    for i, (w, h) in enumerate([(100, 100), (300, 200), (200, 400)]):
        upload(lib, f"f{i}.jpg", make_image(w, h), use_unique_file_name=False,
               folder="/list", tags=["even"] if i % 2 == 0 else ["odd"])
    upload(lib, "notes.txt", b"hello", use_unique_file_name=False, folder="/list")
    files = lib.client.assets.list(path="/list", type="file")
    assert [f.name for f in files] == ["f0.jpg", "f1.jpg", "f2.jpg", "notes.txt"]
    widest = lib.client.assets.list(path="/list", type="file", sort="DESC_WIDTH", limit=1)
    assert [f.name for f in widest] == ["f1.jpg"]
    page = lib.client.assets.list(path="/list", type="file", skip=1, limit=2)
    assert [f.name for f in page] == ["f1.jpg", "f2.jpg"]
    images = lib.client.assets.list(path="/list", file_type="image")
    assert {f.name for f in images} == {"f0.jpg", "f1.jpg", "f2.jpg"}
    found = lib.client.assets.list(search_query='width >= 200 AND tags IN ["even", "odd"]')
    assert {f.name for f in found} == {"f1.jpg", "f2.jpg"}
    found = lib.client.assets.list(search_query='name : "f" AND (height > 300 OR width < 150)')
    assert {f.name for f in found} == {"f0.jpg", "f2.jpg"}
    found = lib.client.assets.list(search_query='path : "/list" AND size < "0.05kb"')
    assert {f.name for f in found} == {"notes.txt"}
    with pytest.raises(imagekitio.BadRequestError) as bad:
        lib.client.assets.list(search_query="width >>= 3")
    assert "position" in str(bad.value.body)
    with pytest.raises(imagekitio.BadRequestError):
        lib.client.assets.list(sort="SIDEWAYS")


# -- custom metadata fields, named transformations --------------------------------------------


def test_custom_metadata_fields(lib: Library) -> None:
    made = lib.client.custom_metadata_fields.create(
        name="brand", label="Brand", schema={"type": "SingleSelect",
                                             "select_options": ["acme", "globex"]})
    assert made.name == "brand"
    with pytest.raises(imagekitio.ConflictError):
        lib.client.custom_metadata_fields.create(name="brand", label="Again",
                                                 schema={"type": "Text"})
    changed = lib.client.custom_metadata_fields.update(made.id, label="Maker")
    assert changed.label == "Maker"
    assert [f.name for f in lib.client.custom_metadata_fields.list()] == ["brand"]
    result = upload(lib, "c.jpg", custom_metadata={"brand": "acme"})
    with pytest.raises(imagekitio.BadRequestError):
        upload(lib, "c.jpg", custom_metadata={"brand": "initech"})
    found = lib.client.assets.list(search_query='"customMetadata.brand" = "acme"')
    assert [f.file_id for f in found] == [result.file_id]
    lib.client.custom_metadata_fields.delete(made.id)
    assert lib.client.custom_metadata_fields.list() == []


def test_named_transformations_merge_with_the_config(lib: Library) -> None:
    upload(lib, "n.jpg", make_image(400, 400), use_unique_file_name=False)
    made = httpx.post(f"{lib.pp.url}/v1/named-transformations", auth=(PRIVATE_KEY, ""),
                      json={"name": "tiny", "transformation": "w-40,h-20"})
    assert made.status_code == 201, made.text
    image = decode(lib.get("/tr:n-tiny/n.jpg").body)
    assert (image.width, image.height) == (40, 20)
    listed = httpx.get(f"{lib.pp.url}/v1/named-transformations", auth=(PRIVATE_KEY, "")).json()
    assert "tiny" in {n["name"] for n in listed}
    named_id = made.json()["id"]
    httpx.patch(f"{lib.pp.url}/v1/named-transformations/{named_id}", auth=(PRIVATE_KEY, ""),
                json={"transformation": "w-30,h-30"})
    assert decode(lib.get("/tr:n-tiny/n.jpg").body).width == 30
    bad = httpx.post(f"{lib.pp.url}/v1/named-transformations", auth=(PRIVATE_KEY, ""),
                     json={"name": "broken", "transformation": "zz-9"})
    assert bad.status_code == 400
    httpx.delete(f"{lib.pp.url}/v1/named-transformations/{named_id}", auth=(PRIVATE_KEY, ""))
    assert lib.get("/tr:n-tiny/n.jpg").status == 400


# -- delivery follows the library -------------------------------------------------------------


def test_private_files_need_a_signature_or_a_named_transformation(lib: Library) -> None:
    result = upload(lib, "secret.jpg", use_unique_file_name=False, is_private_file=True)
    assert result.is_private_file is True
    assert lib.get("/secret.jpg").status == 401
    assert lib.get("/tr:w-50/secret.jpg").status == 401
    signed = lib.client.helper.build_url(src="/secret.jpg", url_endpoint=lib.pp.url,
                                         transformation=[{"width": 50}], signed=True)
    assert lib.get(signed).status == 200
    assert lib.get("/tr:n-ik_ml_thumbnail/secret.jpg").status == 200
    lib.client.files.update(result.file_id, tags=["x"])  # no change to privacy
    assert lib.get("/tr:w-50/secret.jpg").status == 401


def test_a_private_layer_makes_the_result_private(lib: Library) -> None:
    upload(lib, "base.jpg", use_unique_file_name=False)
    upload(lib, "mark.jpg", use_unique_file_name=False, is_private_file=True)
    assert lib.get("/tr:w-50/base.jpg").status == 200
    layered = [{"width": 50, "overlay": {"type": "image", "input": "mark.jpg"}}]
    assert lib.get("/tr:w-50,l-image,i-mark.jpg,w-10,l-end/base.jpg").status == 401
    signed = lib.client.helper.build_url(src="/base.jpg", url_endpoint=lib.pp.url,
                                         transformation=layered, signed=True)  # type: ignore[list-item]
    assert lib.get(signed).status == 200


def test_privacy_change_applies_at_once(lib: Library) -> None:
    result = upload(lib, "open.jpg", use_unique_file_name=False)
    assert lib.get("/tr:w-50/open.jpg").status == 200  # now cached
    lib.client.files.upload(file=make_image(640, 480), file_name="open.jpg",
                            use_unique_file_name=False, is_private_file=True)
    assert lib.get("/tr:w-50/open.jpg").status == 401
    assert lib.client.files.get(result.file_id).is_private_file is True


def test_custom_focus_uses_the_stored_coordinates(lib: Library) -> None:
    upload(lib, "focus.png", _two_halves(), use_unique_file_name=False,
           custom_coordinates="100,0,100,100")
    image = decode(lib.get("/tr:fo-custom,w-50,h-50/focus.png").body)
    assert (image.width, image.height) == (50, 50)
    red, green, blue = image.getpoint(25, 25)[:3]
    assert red < 5 and green < 5 and blue > 250  # the blue right half
    plain = upload(lib, "plain.jpg", use_unique_file_name=False)
    assert plain.custom_coordinates is None
    assert lib.get("/tr:fo-custom,w-50/plain.jpg").status == 400


def _two_halves() -> bytes:
    import pyvips

    red = pyvips.Image.black(100, 100).new_from_image([255, 0, 0])
    blue = pyvips.Image.black(100, 100).new_from_image([0, 0, 255])
    return bytes(red.join(blue, "horizontal").copy(interpretation="srgb").pngsave_buffer())


def test_files_put_in_the_folder_are_served_and_retired_paths_are_not(lib: Library) -> None:
    assert lib.get("/tr:w-30/legacy.jpg").status == 200
    assert lib.get("/.pixelport/partial").status == 404
    stored = upload(lib, "s.jpg", use_unique_file_name=False)
    blob = next(p for p in lib.blobs() if "blobs" in p.parts)
    internal = blob.relative_to(lib.root).as_posix()
    assert lib.get(f"/{internal}").status == 404, "a blob was served by its storage path"
    lib.client.files.delete(stored.file_id)
    assert lib.get("/s.jpg").status == 404


def test_api_errors_are_imagekits_json(lib: Library) -> None:
    unauthenticated = httpx.get(f"{lib.pp.url}/v1/files")
    assert unauthenticated.status_code == 401
    wrong = httpx.get(f"{lib.pp.url}/v1/files", auth=("not-the-key", "do_not_set"))
    assert wrong.status_code == 401
    ok = httpx.get(f"{lib.pp.url}/v1/files", auth=(PRIVATE_KEY, "do_not_set"))
    assert ok.status_code == 200 and isinstance(ok.json(), list)
    unknown = httpx.get(f"{lib.pp.url}/v1/nothing", auth=(PRIVATE_KEY, ""))
    assert unknown.status_code == 404 and set(unknown.json()) >= {"message", "help"}
    bad_json = httpx.post(f"{lib.pp.url}/v1/files/copy", auth=(PRIVATE_KEY, ""),
                          content=b"{not json", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["message"]
    created = httpx.post(f"{lib.pp.url}/v1/folder", auth=(PRIVATE_KEY, ""),
                         json={"folderName": "f"})
    assert created.status_code == 201 and created.json() == {}


def test_pre_and_post_transformations(lib: Library) -> None:
    import json

    steps = {"pre": "w-200,h-200,c-at_max",
             "post": [{"type": "transformation", "value": "w-50"},
                      {"type": "thumbnail", "value": "w-20,h-20"}]}
    made = httpx.post(f"{lib.pp.url}/api/v1/files/upload", auth=(PRIVATE_KEY, ""),
                      data={"fileName": "pre.jpg", "useUniqueFileName": "false",
                            "transformation": json.dumps(steps)},
                      files={"file": ("pre.jpg", make_image(800, 400))})
    assert made.status_code == 200, made.text
    assert (made.json()["width"], made.json()["height"]) == (200, 100)  # stored transformed
    results = Path(lib.pp.cache_dir) / "results"
    deadline = time.monotonic() + 10
    # The post results are made in the background, before anyone asks: wait for both files.
    while len([p for p in results.rglob("*") if p.is_file()]) < 2:
        assert time.monotonic() < deadline, "the post transformations were not made"
        time.sleep(0.05)
    hit = lib.get("/tr:w-50/pre.jpg")
    assert "cache;desc=hit" in hit.headers["server-timing"]
    assert decode(hit.body).width == 50
    for bad in ('{"pre": 3}', '{"post": [{"type": "abs", "value": "sr-240"}]}',
                '{"pre": "zz-1"}', "not json"):
        refused = httpx.post(f"{lib.pp.url}/api/v1/files/upload", auth=(PRIVATE_KEY, ""),
                             data={"fileName": "x.jpg", "transformation": bad},
                             files={"file": ("x.jpg", make_image(10, 10))})
        assert refused.status_code == 400, bad
    assert row_count(lib.database_url, "files") == 1


def test_response_fields_choose_the_optional_fields(lib: Library) -> None:
    chosen = upload(lib, "r.jpg", make_image(90, 60), response_fields=["metadata", "tags"],
                    tags=["t"])
    assert chosen.metadata is not None and (chosen.metadata.width, chosen.metadata.height) \
        == (90, 60)
    assert chosen.tags == ["t"] and chosen.custom_metadata is None  # not asked for


def test_video_uploads_report_their_facts_and_build_their_post_steps(lib: Library) -> None:
    import json

    from tests.video_media import make_clip

    clip = make_clip(lib.root.parent / "upload.mp4", seconds=3)
    steps = {"post": [{"type": "thumbnail", "value": "w-50"},
                      {"type": "abs", "value": "sr-240", "protocol": "hls"},
                      {"type": "transformation", "value": "w-100"}]}
    result = upload(lib, "clip.mp4", clip.read_bytes(), use_unique_file_name=False,
                    transformation=steps)
    assert result.file_type == "non-image"
    assert (result.width, result.height, result.duration) == (320, 240, 3)
    assert (result.video_codec, result.audio_codec) == ("h264", "aac")
    assert result.bit_rate is not None and result.bit_rate > 0
    assert result.thumbnail_url.endswith("/clip.mp4/ik-thumbnail.jpg")
    details = lib.client.files.get(result.file_id)
    assert (details.duration, details.video_codec, details.audio_codec) == (3, "h264", "aac")
    metadata = lib.client.files.metadata.get(result.file_id)
    assert (metadata.width, metadata.height, metadata.duration) == (320, 240, 3)
    assert metadata.video_codec == "h264" and metadata.bit_rate == result.bit_rate
    thumb = lib.get(result.thumbnail_url)
    assert thumb.status == 200 and decode(thumb.body).width <= 400
    # The post steps were made in the background: the stream's first request is no 202.
    deadline = time.monotonic() + 60
    results = Path(lib.pp.cache_dir) / "results"
    # 10 results: the stream's 8 files (2 playlists and 2 inits, video and audio; a segment
    # of each; the HLS and DASH manifests), the thumbnail and the w-100 video.
    while len(list(results.rglob("*.entry"))) < 10:
        assert time.monotonic() < deadline, "the post steps were not made"
        time.sleep(0.1)
    stream = lib.get("/clip.mp4/ik-master.m3u8?tr=sr-240")
    assert stream.status == 200 and b"ik-abs/" in stream.body
    assert "hit" in lib.get("/tr:w-100/clip.mp4").headers["server-timing"]
    refused = httpx.post(f"{lib.pp.url}/api/v1/files/upload", auth=(PRIVATE_KEY, ""),
                         data={"fileName": "x.mp4", "transformation": json.dumps(
                             {"post": [{"type": "abs", "value": "w-100", "protocol": "hls"}]})},
                         files={"file": ("x.mp4", clip.read_bytes())})
    assert refused.status_code == 400 and "w-100" in refused.json()["message"]


def test_a_private_videos_results_need_a_signed_url(lib: Library) -> None:
    from pixelport.security.signing import sign_url
    from tests.video_media import make_clip

    clip = make_clip(lib.root.parent / "private.mp4", seconds=1, audio=False)
    upload(lib, "secret.mp4", clip.read_bytes(), use_unique_file_name=False,
           is_private_file=True)
    for target in ("/secret.mp4?tr=w-64", "/secret.mp4/ik-thumbnail.jpg"):
        refused = lib.get(target)
        assert refused.status == 401 and refused.ik_error.startswith("ESIGNATURE"), target
        signed = sign_url(lib.pp.url + target, lib.pp.url + "/", PRIVATE_KEY)
        assert lib.get(signed).status == 200, target
        assert lib.get(target).status == 401  # the cached result is still private
