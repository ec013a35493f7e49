"""Origin types by their config name (`type = "..."`), each with its builder: a new type is one
module in this package plus one line here.

Names only, no imports: the config reads its valid types from here, and `registry.py` imports
a type's module only when an origin of that type is configured (the cloud SDKs cost start-up
time and 15-25 MB of memory in every process that does not use them).
"""

from __future__ import annotations

BUILDERS: dict[str, str] = {
    "web_server": "web_server:build",
    "web_proxy": "web_proxy:build",
    "s3": "s3:build",
    "s3_compatible": "s3:build_compatible",
    "azure_blob": "azure_blob:build",
    "gcs": "gcs:build",
}
