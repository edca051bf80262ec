"""No repr, str or error message shows a password, whatever the password is."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pyghmi.exceptions import IpmiException  # type: ignore[import-untyped, unused-ignore]

from protocols.ipmi import (
    BmcTarget,
    Credentials,
    IpmiClient,
    IpmiError,
    classify,
    redact,
)
from protocols.ipmi.fakebmc import open_fake_bmcs
from tests.peers import free_udp_port

from ._peers import HOST

usernames = st.text(st.characters(codec="utf-8"), min_size=1, max_size=8).filter(
    lambda u: len(u.encode()) <= 16
)
passwords = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20).filter(
    lambda p: len(p.encode()) <= 20
)


@given(usernames, passwords)
def test_credentials_never_show_the_password(username: str, password: str) -> None:
    # The property is about the secret, not about text that happens to be in the template.
    template = BmcTarget("10.0.0.1", Credentials(username, "\x00"))
    assume(password not in repr(template) + template.describe())
    creds = Credentials(username, password)
    assert password not in repr(creds) and password not in str(creds)
    target = BmcTarget("10.0.0.1", creds)
    assert password not in repr(target) and password not in target.describe()


@given(passwords, st.text(), st.text(), st.integers(0, 0x1FF))
def test_errors_never_contain_the_password(
    password: str, before: str, after: str, code: int
) -> None:
    # the neutral stand-in must not occur in the text around the secret, or the template
    # redacts more than the real run does (a "\x00" after the secret is shown as "\\x00")
    assume("\x00" not in before + after)

    def failures(secret: str) -> list[BaseException]:
        return [
            IpmiException(before + secret + after, code),
            IpmiException(f"{before}{secret.encode()!r}{after}"),
            OSError(before + secret),
            RuntimeError(secret * 2),
        ]

    for exc, neutral in zip(failures(password), failures("\x00"), strict=True):
        template = classify(neutral, bmc="admin@h:623", secrets=["\x00"])
        assume(password not in str(template) + repr(template))
        error = classify(exc, bmc="admin@h:623", secrets=[password])
        assert isinstance(error, IpmiError)
        assert password not in str(error) and password not in repr(error)


@given(st.text(), st.lists(st.text(), max_size=3))
def test_redact_leaves_no_secret(text: str, secrets: list[str]) -> None:
    cleaned = redact(text, secrets)
    assert not any(secret and secret in cleaned for secret in secrets)


async def test_login_failures_never_show_the_password() -> None:
    port = free_udp_port()
    async with open_fake_bmcs(port), IpmiClient(timeout=5) as ipmi:
        for password in ["admin", "password1", "p@ss:w0rd", "127.0.0.1"]:
            with pytest.raises(IpmiError) as caught:
                await ipmi.get_power(BmcTarget(HOST, Credentials("admin", password), port=port))
            assert password not in str(caught.value) and password not in repr(caught.value)
