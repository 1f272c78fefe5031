"""MongoDB in the ``cluster`` shape (issue #16 item 5, docs/backends.md "Cluster shape"): a
three-member replica set where ``mongod`` is installed, the single FerretDB otherwise.

No ``mongod`` is installed on this project's machines, so here the provider test checks the
FerretDB branch, and only the configuration sent to ``replSetInitiate`` and the URL handed out
are checked for the replica set; on a machine with ``mongod`` the same provider test checks a
formed set (a primary and two secondaries) instead. Neither is evidence that a set fails over.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pymongo.errors
import pymongo.uri_parser
import pytest
from hypothesis import given
from hypothesis import strategies as st

from semafore.deploy import health
from semafore.deploy.cluster import LocalClusterProvider
from semafore.deploy.mongo_replica_set import (
    MEMBERS,
    PRIMARY,
    REPLICA_SET,
    SECONDARY,
    replica_set_config,
    replica_set_url,
)
from semafore.deploy.selection import provider_from_settings
from semafore.deploy.settings import InfraSettings
from semafore.deploy.testing import require

_ports = st.lists(st.integers(min_value=1, max_value=65535), min_size=1, max_size=7, unique=True)


@given(ports=_ports)
def test_the_initiate_config_names_one_member_per_port_and_prefers_the_first(
    ports: list[int],
) -> None:
    config = replica_set_config(ports)
    assert config["_id"] == REPLICA_SET
    members = config["members"]
    assert [m["host"] for m in members] == [f"127.0.0.1:{p}" for p in ports]
    assert [m["_id"] for m in members] == list(range(len(ports)))
    priorities = [m["priority"] for m in members]
    assert priorities[0] > max(priorities[1:], default=0)  # the provider's own process leads


@pytest.mark.parametrize("ports", [[], [27017, 27017]])
def test_an_initiate_config_without_distinct_ports_is_refused(ports: list[int]) -> None:
    with pytest.raises(ValueError, match="ports"):
        replica_set_config(ports)


@given(ports=_ports)
def test_the_url_names_every_member_and_the_set_as_pymongo_reads_it(ports: list[int]) -> None:
    parsed = pymongo.uri_parser.parse_uri(replica_set_url(ports))
    assert parsed["nodelist"] == [("127.0.0.1", p) for p in ports]
    assert parsed["options"]["replicaSet"] == REPLICA_SET


def test_the_health_probe_takes_a_replica_set_url() -> None:
    """A direct connection to several hosts is a pymongo ConfigurationError: the probe must
    ask the set, so a relay replica (``SEMAFORE_PROVIDER=external``) can check the URL."""
    url = replica_set_url([1, 2, 3])  # nothing listens: selection times out, nothing else
    with pytest.raises(pymongo.errors.ServerSelectionTimeoutError):
        health.mongodb_ping(url, timeout=0.2)


@pytest.fixture
def provider(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> Iterator[LocalClusterProvider]:
    env = {**os.environ, "SEMAFORE_PROVIDER": "local", "SEMAFORE_SHAPE": "cluster"}
    settings = dataclasses.replace(InfraSettings.from_env(env), work_dir=tmp_path)
    chosen = provider_from_settings(settings)
    assert isinstance(chosen, LocalClusterProvider)

    def start() -> LocalClusterProvider:
        chosen.start()
        return chosen

    with caplog.at_level(logging.WARNING, logger="semafore.deploy.cluster"):
        require(start)
    yield chosen
    chosen.stop()


@pytest.mark.backend
def test_the_cluster_shape_replicates_mongodb_only_where_mongod_runs(
    provider: LocalClusterProvider, caplog: pytest.LogCaptureFixture
) -> None:
    endpoints = provider.endpoints
    assert endpoints.mongodb_url is not None
    said = "\n".join(record.getMessage() for record in caplog.get_records("setup"))
    if provider.mongod() is None:  # this project's machines: FerretDB, one process, said so
        assert endpoints.mongodb_engine == "ferretdb"
        assert provider.mongo_replica_set is None
        assert "replicaSet" not in endpoints.mongodb_url
        assert "MongoDB is one ferretdb process, not replicated" in said
        return
    assert "not replicated" not in said
    replica_set = provider.mongo_replica_set
    assert endpoints.mongodb_engine == "mongod" and replica_set is not None
    assert endpoints.mongodb_url == replica_set.url
    states = replica_set.member_states()
    assert len(states) == MEMBERS
    assert states[replica_set.primary_port] == PRIMARY
    assert sorted(states.values()) == [PRIMARY, SECONDARY, SECONDARY]
    assert health.mongodb_ping(endpoints.mongodb_url, timeout=5)
