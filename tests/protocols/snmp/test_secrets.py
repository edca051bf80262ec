"""No repr, str or error shows a community or a v3 key, whatever it is."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st
from pysnmp.proto import errind  # type: ignore[import-untyped, unused-ignore]

from protocols.snmp import (
    CommunityAuth,
    SnmpClientError,
    SnmpError,
    SnmpTarget,
    UsmAuth,
    from_indication,
    redact,
)

secrets = st.text(min_size=1, max_size=24)
keys = st.text(min_size=8, max_size=24)
INDICATIONS = [
    errind.requestTimedOut,
    errind.unknownUserName,
    errind.wrongDigest,
    errind.decryptionError,
    errind.unknownEngineID,
]


@given(secrets)
def test_communities_never_shown(community: str) -> None:
    template = SnmpTarget("10.0.0.2", CommunityAuth("\x00"))
    assume(community not in repr(template) + template.describe())
    target = SnmpTarget("10.0.0.2", CommunityAuth(community))
    assert community not in repr(target.auth) and community not in str(target.auth)
    assert community not in repr(target) and community not in target.describe()


@given(st.text(min_size=1, max_size=12), keys, keys)
def test_usm_keys_never_shown(user: str, auth_key: str, priv_key: str) -> None:
    shown = repr(UsmAuth(user, "\x00" * 8, "\x01" * 8))
    assume(auth_key not in shown and priv_key not in shown)
    auth = UsmAuth(user, auth_key, priv_key)
    for text in (repr(auth), str(auth), repr(SnmpTarget("h", auth))):
        assert auth_key not in text and priv_key not in text


@given(secrets, st.sampled_from(INDICATIONS), st.text(), st.integers(0, 20), st.integers(0, 5))
def test_errors_never_contain_secrets(
    secret: str, indication: object, extra: str, status: int, index: int
) -> None:
    def errors(value: str) -> list[SnmpClientError]:
        return [
            from_indication(indication, secrets=[value], agent="h:161"),
            from_indication(RuntimeError(f"{extra}{value}"), secrets=[value]),
        ]

    for error, template in zip(errors(secret), errors("\x00"), strict=True):
        # The property is about the secret, not text that happens to be in the template.
        assume(secret not in str(template) + repr(template))
        assert isinstance(error, SnmpClientError)
        assert secret not in str(error) and secret not in repr(error)
    assert secret not in redact(f"{extra}{secret}{extra}", [secret])
    error = SnmpError(status, index, oid="1.3.6.1")
    assert error.status == status and error.index == index and error.status_name in str(error)
