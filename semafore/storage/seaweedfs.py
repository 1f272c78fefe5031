"""SeaweedFS blob adapter over the filer HTTP API: attachment ciphertext (ADR-0157, seed §3.2).

Why the filer API and not the S3 gateway (docs/backends.md): the relay needs put/get/delete of
opaque blobs by key, which the filer serves as plain HTTP verbs on a path — no SigV4 signing,
no bucket or IAM set-up, one hop fewer (the S3 gateway is itself a client of the filer, and S3
buckets are just filer directories under ``/buckets``). Keys become one base64url path segment
under a per-deployment root directory (the filer decodes ``%2F`` into a directory separator,
so percent-encoding would not do), so a key can never escape it.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from semafore.storage.ports import BlobStore, StorageUnavailable

_MODE_DIR = 1 << 31


def _encode(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=") or "="


def _decode(name: str) -> str:
    if name == "=":
        return ""
    return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()


class SeaweedfsError(StorageUnavailable):
    """The filer answered with an unexpected status, or could not be reached: the blob tier
    cannot serve the call now (:class:`StorageUnavailable`, answered 503 by the relay)."""


class SeaweedfsBlobStore(BlobStore):
    def __init__(self, filer_url: str, root: str, *, timeout: float = 30.0) -> None:
        root = "/" + root.strip("/")
        if root == "/" or ".." in root.split("/"):
            raise ValueError("root: must be a non-root directory without '..'")
        self.root = root
        self.client = httpx.AsyncClient(base_url=filer_url.rstrip("/"), timeout=timeout)

    def path(self, key: str) -> str:
        """The filer path of ``key``'s blob: what a fault test asks the SeaweedFS master about
        to find the volume servers holding it (``SeaweedCluster.holders``)."""
        return f"{self.root}/{_encode(key)}"

    async def _request(self, op: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One filer call; a filer that cannot be reached (refused, reset, timed out) is a
        :class:`SeaweedfsError` like one that answers an error, so the relay answers both 503
        ``storage_unavailable`` (seed §3.5), never an unexpected 500."""
        try:
            return await self.client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise SeaweedfsError(f"{op}: filer unreachable ({type(exc).__name__})") from exc

    async def put(self, key: str, data: bytes) -> None:
        response = await self._request(
            "put",
            "PUT",
            self.path(key),
            content=bytes(data),
            headers={"Content-Type": "application/octet-stream"},
        )
        if response.status_code not in (200, 201):
            raise SeaweedfsError(f"put: filer answered {response.status_code}")

    async def get(self, key: str) -> bytes | None:
        response = await self._request("get", "GET", self.path(key))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise SeaweedfsError(f"get: filer answered {response.status_code}")
        return response.content

    async def delete(self, key: str) -> bool:
        path = self.path(key)
        head = await self._request("delete", "HEAD", path)
        if head.status_code == 404:
            return False
        response = await self._request("delete", "DELETE", path)
        if response.status_code not in (200, 202, 204, 404):
            raise SeaweedfsError(f"delete: filer answered {response.status_code}")
        return response.status_code != 404

    async def keys(self) -> list[str]:
        """Every stored key (follows the filer's pagination)."""
        out: list[str] = []
        last = ""
        while True:
            response = await self._request(
                "keys",
                "GET",
                self.root + "/",
                params={"limit": 1000, "lastFileName": last},
                headers={"Accept": "application/json"},
            )
            if response.status_code == 404:
                return out
            page = response.json()
            entries = page.get("Entries") or []
            for entry in entries:
                if not int(entry.get("Mode", 0)) & _MODE_DIR:
                    out.append(_decode(entry["FullPath"].rsplit("/", 1)[-1]))
            if not page.get("ShouldDisplayLoadMore") or not entries:
                return out
            last = entries[-1]["FullPath"].rsplit("/", 1)[-1]

    async def dump(self) -> list[tuple[str, bytes]]:
        out = []
        for key in await self.keys():
            data = await self.get(key)
            if data is not None:
                out.append((f"seaweedfs:{self.path(key)}", data))
        return out

    async def drop(self) -> None:
        await self.client.delete(
            self.root, params={"recursive": "true", "ignoreRecursiveError": "true"}
        )

    async def close(self) -> None:
        await self.client.aclose()
