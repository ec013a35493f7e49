"""Which storage a library uses: a module of its own, since the bucket's builds on the
folder's (bucket.py imports storage.py, so storage.py cannot import it back)."""

from __future__ import annotations

from pathlib import Path

from pixelport.config import BucketConfig
from pixelport.library.storage import FolderStorage, Storage


def open_storage(root: Path, bucket: BucketConfig | None) -> Storage:
    """The library's storage: the bucket when there is one, else the folder `root` (the
    S3 client is imported only then)."""
    if bucket is None:
        return FolderStorage(root)
    from pixelport.library.bucket import BucketStorage

    return BucketStorage(bucket, root)
