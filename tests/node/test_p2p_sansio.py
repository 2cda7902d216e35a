"""Sans-IO handshake and framing: two in-memory ends, tampering, pinning, chains, fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.errors import RemoteError
from ads_ledger.node.p2p import (
    ChainMismatch,
    FrameAuthError,
    FrameOpener,
    FrameSealer,
    FrameTooLarge,
    Handshake,
    HandshakeAuthError,
    MessageError,
    PeerKeyMismatch,
    PeerNotAllowed,
    ProtocolMismatch,
    SelfConnection,
    decode_message,
    encode_message,
    node_id,
    parse_node_id,
)
from ads_ledger.node.p2p.handshake import HELLO_SIZE, MAGIC, chain_tag

CHAIN = "ads-test"


def pump(a: Handshake, b: Handshake, *, chunk: int = 1 << 20) -> None:
    """Move bytes both ways until neither side has anything to send (bounded)."""
    for _ in range(10):
        da, db = a.data_to_send(), b.data_to_send()
        if not da and not db:
            return
        for i in range(0, len(da), chunk):
            if not b.complete:
                b.receive_data(da[i : i + chunk])
        for i in range(0, len(db), chunk):
            if not a.complete:
                a.receive_data(db[i : i + chunk])
    raise AssertionError("handshake did not settle")


def keys() -> tuple[SigningKey, SigningKey]:
    return SigningKey(b"\x01" * 32), SigningKey(b"\x02" * 32)


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_handshake_completes_and_frames_flow_both_ways(chunk: int) -> None:
    ka, kb = keys()
    a = Handshake(ka, CHAIN, expected_peer=kb.pub)
    b = Handshake(kb, CHAIN, allowed={ka.pub})
    pump(a, b, chunk=chunk)
    assert a.complete and b.complete
    sa, sb = a.session(), b.session()
    assert sa.remote_pub == kb.pub and sb.remote_pub == ka.pub
    assert sa.remote_id == node_id(kb.pub)
    assert sa.transcript_hash == sb.transcript_hash
    for i in range(3):
        sb.opener.receive_data(sa.sealer.seal(encode_message("vote", {"i": i})))
        sa.opener.receive_data(sb.sealer.seal(encode_message("tx", b"x" * i)))
    for i in range(3):
        assert decode_message(sb.opener.next_frame() or b"").body == {"i": i}
        assert decode_message(sa.opener.next_frame() or b"").body == b"x" * i
    assert sb.opener.next_frame() is None


def test_directions_use_different_keys_so_a_reflected_frame_fails() -> None:
    ka, kb = keys()
    a, b = Handshake(ka, CHAIN), Handshake(kb, CHAIN)
    pump(a, b)
    sa = a.session()
    frame = sa.sealer.seal(encode_message("vote", 1))
    sa.opener.receive_data(frame)  # a's own frame bounced back to a
    with pytest.raises(FrameAuthError):
        sa.opener.next_frame()


def test_replayed_and_tampered_frames_fail() -> None:
    ka, kb = keys()
    a, b = Handshake(ka, CHAIN), Handshake(kb, CHAIN)
    pump(a, b)
    sa, sb = a.session(), b.session()
    f1 = sa.sealer.seal(encode_message("vote", 1))
    sb.opener.receive_data(f1)
    assert sb.opener.next_frame() is not None
    sb.opener.receive_data(f1)  # replay: the receiver's counter moved on
    with pytest.raises(FrameAuthError):
        sb.opener.next_frame()
    with pytest.raises(FrameAuthError):  # and stays failed
        sb.opener.next_frame()

    a2, b2 = Handshake(ka, CHAIN), Handshake(kb, CHAIN)
    pump(a2, b2)
    f = bytearray(a2.session().sealer.seal(encode_message("vote", 1)))
    f[-1] ^= 1
    b2.session().opener.receive_data(bytes(f))
    with pytest.raises(FrameAuthError):
        b2.session().opener.next_frame()


def test_frame_from_an_old_session_does_not_open_in_a_new_one() -> None:
    ka, kb = keys()
    a1, b1 = Handshake(ka, CHAIN), Handshake(kb, CHAIN)
    pump(a1, b1)
    old = a1.session().sealer.seal(encode_message("vote", 1))
    a2, b2 = Handshake(ka, CHAIN), Handshake(kb, CHAIN)
    pump(a2, b2)
    assert a1.session().transcript_hash != a2.session().transcript_hash  # fresh ephemerals
    b2.session().opener.receive_data(old)
    with pytest.raises(FrameAuthError):
        b2.session().opener.next_frame()


def test_pinned_key_mismatch_is_refused() -> None:
    ka, kb = keys()
    other = SigningKey(b"\x03" * 32)
    a = Handshake(ka, CHAIN, expected_peer=other.pub)
    b = Handshake(kb, CHAIN)
    with pytest.raises(PeerKeyMismatch):
        pump(a, b)


def test_inbound_allow_list() -> None:
    ka, kb = keys()
    a = Handshake(ka, CHAIN)
    b = Handshake(kb, CHAIN, allowed={SigningKey(b"\x03" * 32).pub})
    with pytest.raises(PeerNotAllowed):
        pump(a, b)


def test_other_chain_is_refused_at_hello_and_by_the_keys() -> None:
    ka, kb = keys()
    a, b = Handshake(ka, CHAIN), Handshake(kb, "other-chain")
    with pytest.raises(ChainMismatch):
        pump(a, b)
    # A peer that forges our chain tag still derives other keys: its auth frame fails.
    a, b = Handshake(ka, CHAIN), Handshake(kb, "other-chain")
    hello_a, hello_b = a.data_to_send(), b.data_to_send()
    m = len(MAGIC)
    b.receive_data(hello_a[:m] + chain_tag("other-chain") + hello_a[m + 8 :])
    a.receive_data(hello_b[:m] + chain_tag(CHAIN) + hello_b[m + 8 :])
    with pytest.raises(HandshakeAuthError):
        a.receive_data(b.data_to_send())


def test_garbage_hello_fails_at_the_first_wrong_byte() -> None:
    a = Handshake(keys()[0], CHAIN)
    with pytest.raises(ProtocolMismatch):
        a.receive_data(b"GET / HTTP/1.1\r\n")
    a = Handshake(keys()[0], CHAIN)
    a.receive_data(MAGIC[:3])  # a correct prefix waits for more
    with pytest.raises(ProtocolMismatch):
        a.receive_data(b"\xff")


def test_reflected_hello_and_self_connection() -> None:
    ka, _ = keys()
    a = Handshake(ka, CHAIN)
    with pytest.raises(SelfConnection):
        a.receive_data(a.data_to_send())  # our own hello echoed
    a, a2 = Handshake(ka, CHAIN), Handshake(ka, CHAIN)
    with pytest.raises(SelfConnection):
        pump(a, a2)


def test_low_order_ephemeral_key_is_refused() -> None:
    a = Handshake(keys()[0], CHAIN)
    hello = a.data_to_send()
    with pytest.raises(HandshakeAuthError):
        a.receive_data(hello[: HELLO_SIZE - 32] + bytes(32))


def test_auth_signature_of_another_session_is_refused() -> None:
    """A MITM that relays a valid auth frame from a different session gets nowhere."""
    ka, kb = keys()
    a, b = Handshake(ka, CHAIN), Handshake(kb, CHAIN)
    hello_a, hello_b = a.data_to_send(), b.data_to_send()
    a.receive_data(hello_b)
    b.receive_data(hello_a)
    sess_b_auth = b.data_to_send()
    a.receive_data(sess_b_auth)
    assert a.complete
    # Replay b's auth frame into a new session of a with the same (replayed) hello from b.
    a2 = Handshake(ka, CHAIN)
    a2.data_to_send()
    a2.receive_data(hello_b)
    with pytest.raises(HandshakeAuthError):
        a2.receive_data(sess_b_auth)


def test_oversized_frame_is_refused_from_its_header() -> None:
    op = FrameOpener(b"k" * 32, max_frame=1000)
    op.receive_data(struct.pack(">I", 1001))
    with pytest.raises(FrameTooLarge):
        op.next_frame()
    with pytest.raises(ValueError):
        FrameSealer(b"k" * 32, max_frame=100).seal(b"x" * 85)


def test_message_must_be_canonical_t_b_map() -> None:
    assert decode_message(encode_message("vote", {"a": 1})).type == "vote"
    bad = [
        b"\xc1",
        codec.encode({"t": "vote"}),
        codec.encode({"t": "vote", "b": 1, "x": 2}),
        codec.encode({"t": 5, "b": 1}),
        codec.encode({"t": "Vote!", "b": 1}),
        codec.encode([1, 2]),
        b"\x82\xa1t\xa4vote\xa1b\x01",  # keys out of canonical order
    ]
    for raw in bad:
        with pytest.raises(MessageError):
            decode_message(raw)


def test_node_id_text_form() -> None:
    k = SigningKey(b"\x05" * 32)
    assert node_id(k.pub) == k.pub.hex() and parse_node_id(k.pub.hex()) == k.pub
    for bad in ["", k.pub.hex().upper(), k.pub.hex()[:-2], "zz" * 32]:
        with pytest.raises(ValueError):
            parse_node_id(bad)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=64))
def test_hostile_bytes_never_crash_the_handshake(data: bytes, chunk: int) -> None:
    """Any byte string either leaves the handshake waiting or raises a RemoteError."""
    a = Handshake(keys()[0], CHAIN)
    a.data_to_send()
    try:
        for i in range(0, len(data), chunk):
            a.receive_data(data[i : i + chunk])
    except RemoteError:
        return
    assert not a.complete


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_hostile_bytes_after_a_valid_hello_never_crash(data: bytes) -> None:
    ka, kb = keys()
    a, b = Handshake(ka, CHAIN), Handshake(kb, CHAIN)
    a.data_to_send()
    a.receive_data(b.data_to_send())  # a valid hello; then garbage instead of an auth frame
    try:
        a.receive_data(data)
    except RemoteError:
        return
    assert not a.complete


def test_mutants_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bugs: a constant nonce lets a replay through; one key for both directions lets a
    reflected frame through. The checks above would fail against either mutant."""
    from ads_ledger.node.p2p import framing, handshake

    ka, kb = keys()
    monkeypatch.setattr(framing, "_nonce", lambda counter: bytes(12))
    a, b = Handshake(ka, CHAIN), Handshake(kb, CHAIN)
    pump(a, b)
    f1 = a.session().sealer.seal(encode_message("vote", 1))
    b.session().opener.receive_data(f1 + f1)
    assert b.session().opener.next_frame() == b.session().opener.next_frame()  # replay accepted
    monkeypatch.undo()

    from cryptography.hazmat.primitives.kdf.hkdf import HKDF as real_hkdf

    class SameKeyHKDF:
        def __init__(self, **kw: object) -> None:
            self._h = real_hkdf(**kw)  # type: ignore[arg-type]

        def derive(self, ikm: bytes) -> bytes:
            k = self._h.derive(ikm)[:32]
            return k + k

    monkeypatch.setattr(handshake, "HKDF", SameKeyHKDF)
    a, b = Handshake(ka, CHAIN), Handshake(kb, CHAIN)
    pump(a, b)
    sa = a.session()
    sa.opener.receive_data(sa.sealer.seal(encode_message("vote", 1)))
    assert sa.opener.next_frame() is not None  # reflection accepted


def test_backoff_is_exponential_jittered_capped_and_resettable() -> None:
    import random

    from ads_ledger.node.p2p import Backoff

    b = Backoff(0.1, 1.0, random.Random(7))
    delays = [b.next_delay() for _ in range(8)]
    nominal = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    assert all(n / 2 <= d <= n for d, n in zip(delays, nominal))
    assert len({round(d, 9) for d in delays[4:]}) == 4  # jitter: capped delays still differ
    b.reset()
    assert 0.05 <= b.next_delay() <= 0.1
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0, random.Random())


def test_unauthenticated_peer_cannot_announce_a_large_frame() -> None:
    """Before the auth frame, a header announcing more than an auth frame needs is refused at
    once (nothing is buffered for it); after authentication full-size frames flow."""
    ka, kb = keys()
    a = Handshake(ka, CHAIN)
    b = Handshake(kb, CHAIN)
    a.receive_data(b.data_to_send()[:HELLO_SIZE])  # b's hello only, not its auth frame
    with pytest.raises(HandshakeAuthError):
        a.receive_data(struct.pack(">I", 1 << 20) + bytes(4096))
    a, b = Handshake(ka, CHAIN), Handshake(kb, CHAIN)
    pump(a, b)
    big = encode_message("proposal", b"p" * 200_000)
    sa, sb = a.session(), b.session()
    sb.opener.receive_data(sa.sealer.seal(big))
    assert sb.opener.next_frame() == big
