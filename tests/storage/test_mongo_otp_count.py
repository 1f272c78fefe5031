"""MongoDB token store: an OTP challenge's failure count is the number of failures claimed,
even when the stored count lags (FerretDB applies ``$max`` as a read-modify-write, so of two
concurrent failures the one that read first can write the lower count last; the conformance
test ``test_otp_failures_count_atomically_and_backoff_fields_round_trip`` saw 4 after 5
failures, now and then, before the count was read from the claimed markers)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from semafore.deploy.settings import ProviderKind
from semafore.deploy.stores import backend_stores
from semafore.deploy.testing import shared_provider
from semafore.storage.mongodb import MongoTokenStore
from semafore.storage.ports import OtpChallenge


@pytest.mark.backend
def test_a_lagging_stored_count_does_not_lower_the_failures_claimed() -> None:
    provider = shared_provider(ProviderKind.LOCAL)

    async def body() -> None:
        stores, handles = await backend_stores(provider.endpoints, f"t{uuid.uuid4().hex[:16]}")
        try:
            tokens = stores.tokens
            assert isinstance(tokens, MongoTokenStore)
            await tokens.put_otp(OtpChallenge("o1", "bob", b"h", 60.0, "ip", 0, 2, 0.0))
            for _ in range(5):
                await tokens.fail_otp("o1", "bob", "ip")
            key = tokens._otp_key("o1", "bob", "ip")
            # what the lagging writer of failure 4 leaves behind once failure 5 has been written
            await handles.mongo.db.otps.update_one({"_id": key}, {"$set": {"failures": 4}})
            stored = await tokens.get_otp("o1", "bob", "ip")
            assert stored is not None and stored.failures == 5
            after = await tokens.fail_otp("o1", "bob", "ip")
            assert after is not None and after.failures == 6
            taken = await tokens.take_otp("o1", "bob", "ip")
            assert taken is not None and taken.failures == 6
            # a new challenge (a new put) starts its own count
            await tokens.put_otp(OtpChallenge("o1", "bob", b"h2", 60.0, "ip", 0, 2, 0.0))
            fresh = await tokens.get_otp("o1", "bob", "ip")
            assert fresh is not None and fresh.failures == 0
        finally:
            await handles.drop()
            await handles.close()

    asyncio.run(body())
