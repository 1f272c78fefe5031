"""What the Redis URL forms share (``redis+sentinel://``, ``redis+cluster://``): the typed
error naming the bad part, and the ``HOST:PORT[,HOST:PORT...]`` list both start with
(docs/backends.md "Cluster shape")."""

from __future__ import annotations


class RedisUrlError(ValueError):
    """A Redis URL that cannot be used; ``field`` names the part that is wrong (``scheme``,
    ``sentinels``, ``nodes``, ``service``, ``db``), ``url`` the URL as given."""

    def __init__(self, url: str, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason} (in {url!r})")
        self.url = url
        self.field = field
        self.reason = reason


def parse_hosts(url: str, netloc: str, field: str) -> tuple[tuple[str, int], ...]:
    """``HOST:PORT[,HOST:PORT...]`` of ``url``; a bad item is a :class:`RedisUrlError` on
    ``field``. Credentials are refused: this form has nowhere safe to keep them."""
    if "@" in netloc:
        raise RedisUrlError(url, field, "credentials are not supported in this form")
    hosts: list[tuple[str, int]] = []
    for item in netloc.split(","):
        host, colon, port_text = item.strip().rpartition(":")
        if not colon or not host:
            raise RedisUrlError(url, field, f"{item!r} is not HOST:PORT")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise RedisUrlError(url, field, f"bad port {port_text!r} in {item!r}")
        hosts.append((host, int(port_text)))
    return tuple(hosts)
