"""Hypothesis strategies for TFTP packets and transfer parameters, for property tests of
handlers built on this package."""

from __future__ import annotations

from hypothesis import strategies as st

from ._packets import (
    MAX_FILENAME,
    MAX_OPTION_FIELD,
    MAX_OPTIONS,
    MAX_REQUEST,
    Ack,
    Data,
    Error,
    OptionAck,
    Packet,
    ReadRequest,
    WriteRequest,
    encode,
)

_ascii_field = st.text(
    alphabet=st.characters(min_codepoint=1, max_codepoint=127), min_size=1, max_size=16
)


def block_numbers() -> st.SearchStrategy[int]:
    """16-bit block numbers, with the edges (0, 1, 65535) likely."""
    return st.sampled_from([0, 1, 0xFFFF]) | st.integers(0, 0xFFFF)


def filenames() -> st.SearchStrategy[str]:
    """Names a request can carry: any text without NUL or surrogates, within the size bound."""
    return st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"),
        min_size=1,
        max_size=64,
    ).filter(lambda name: len(name.encode()) <= MAX_FILENAME)


def options() -> st.SearchStrategy[dict[str, str]]:
    """Option fields: the known options with plausible values, and arbitrary ASCII ones."""
    known = st.fixed_dictionaries(
        {},
        optional={
            "blksize": st.integers(0, 70000).map(str),
            "timeout": st.integers(0, 300).map(str),
            "tsize": st.integers(0, 2**40).map(str),
            "windowsize": st.integers(0, 70000).map(str),
        },
    )
    other = st.dictionaries(
        _ascii_field.filter(
            lambda n: n.lower() not in {"blksize", "timeout", "tsize", "windowsize"}
        ),
        st.text(
            alphabet=st.characters(min_codepoint=1, max_codepoint=127), max_size=MAX_OPTION_FIELD
        ),
        max_size=4,
    )

    def merge(pair: tuple[dict[str, str], dict[str, str]]) -> dict[str, str]:
        merged = dict(pair[0])
        lowered = {name.lower() for name in merged}
        for name, value in pair[1].items():
            if name.lower() not in lowered and len(merged) < MAX_OPTIONS:
                lowered.add(name.lower())
                merged[name] = value
        return merged

    return st.tuples(known, other).map(merge)


def requests() -> st.SearchStrategy[ReadRequest | WriteRequest]:
    """RRQ and WRQ packets that fit the request bound."""
    modes = st.sampled_from(["octet", "netascii", "OCTET", "mail"])
    return st.one_of(
        st.builds(ReadRequest, filenames(), modes, options()),
        st.builds(WriteRequest, filenames(), modes, options()),
    ).filter(lambda request: len(encode(request)) <= MAX_REQUEST)


def packets(max_data: int = 1468) -> st.SearchStrategy[Packet]:
    """Every packet type, each encodable."""
    return st.one_of(
        requests(),
        st.builds(Data, block_numbers(), st.binary(max_size=max_data)),
        st.builds(Ack, block_numbers()),
        st.builds(
            Error,
            st.integers(0, 0xFFFF),
            st.text(
                alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"),
                max_size=40,
            ),
        ),
        st.builds(OptionAck, options()).filter(lambda oack: len(encode(oack)) <= MAX_REQUEST),
    )


def transfer_parameters() -> st.SearchStrategy[dict[str, int]]:
    """``blksize`` and ``windowsize`` values worth testing a transfer with."""
    return st.fixed_dictionaries(
        {
            "blksize": st.sampled_from([8, 9, 16, 512]) | st.integers(8, 600),
            "windowsize": st.sampled_from([1, 1, 2, 4, 8]) | st.integers(1, 16),
        }
    )
