"""A token's user is re-read from the store every few seconds: demotion and disabling take hold."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import update

from botyard.errors import InvalidToken
from botyard.orchestrator.auth import Authenticator, Role, hash_password
from botyard.store import SqlStore
from botyard.store.tables import users


def test_a_demoted_then_disabled_user_loses_rights_within_the_ttl(store: SqlStore) -> None:
    store.users.create("ops", hash_password("pw-123456"), Role.OPERATOR.value)
    auth = Authenticator(
        store.users, secret="s" * 40, algorithm="HS256", expiry_minutes=5, user_ttl=0.3
    )
    token = auth.issue(auth.login("ops", "pw-123456"))
    assert auth.verify(token).role is Role.OPERATOR

    with store.engine.begin() as conn:
        conn.execute(update(users).where(users.c.username == "ops").values(role="viewer"))
    assert auth.verify(token).role is Role.OPERATOR  # still the remembered record
    time.sleep(0.35)
    assert auth.verify(token).role is Role.VIEWER  # the token says operator; the store wins

    with store.engine.begin() as conn:
        conn.execute(update(users).where(users.c.username == "ops").values(disabled=True))
    time.sleep(0.35)
    with pytest.raises(InvalidToken):
        auth.verify(token)
