"""Slow tier of the API fuzzing (see test_schemathesis.py): schemathesis' explicit-examples
and boundary-value coverage phases plus 40 fuzzed examples per operation, called as an admin
and as a member. Building these cases costs minutes, so the module is not even collected
when the run deselects ``slow`` (tests/server/conftest.py); CI runs it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.server.test_schemathesis import call_as, schema_under_test

thorough = schema_under_test(coverage=True, max_examples=40)


@pytest.mark.slow
@thorough.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_thoroughly_as_admin_and_member(case: Any) -> None:
    call_as(case, thorough.app, "0")
    call_as(case, thorough.app, "1")
