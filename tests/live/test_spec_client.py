"""A client written only from DESIGN §3–§8, importing none of our code.

It encodes canonical msgpack itself, signs with PyNaCl, submits a transaction to a running
devnet over plain HTTP, reads the charge point record with its proof and the signed header,
and verifies both: header bytes → block id, the commit's signatures against the validator
set and its hash, the JMT proof against the header's state root. If our node drifted from the
spec in any byte, this test fails where our own client (sharing our code) would not.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import nacl.signing
import pytest

# --------------------------------------------------------------- §3 canonical msgpack


def enc(v: Any) -> bytes:
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack(">b", v)
        if v >= 0:
            for tag, fmt, lim in ((0xCC, ">B", 2**8), (0xCD, ">H", 2**16), (0xCE, ">I", 2**32), (0xCF, ">Q", 2**64)):
                if v < lim:
                    return bytes([tag]) + struct.pack(fmt, v)
        for tag, fmt, lim in ((0xD0, ">b", 2**7), (0xD1, ">h", 2**15), (0xD2, ">i", 2**31), (0xD3, ">q", 2**63)):
            if -lim <= v:
                return bytes([tag]) + struct.pack(fmt, v)
        raise ValueError(v)
    if isinstance(v, bytes):
        n = len(v)
        head = bytes([0xC4, n]) if n < 256 else (b"\xc5" + struct.pack(">H", n) if n < 65536 else b"\xc6" + struct.pack(">I", n))
        return head + v
    if isinstance(v, str):
        b = v.encode()
        n = len(b)
        if n < 32:
            head = bytes([0xA0 | n])
        elif n < 256:
            head = bytes([0xD9, n])
        elif n < 65536:
            head = b"\xda" + struct.pack(">H", n)
        else:
            head = b"\xdb" + struct.pack(">I", n)
        return head + b
    if isinstance(v, list):
        n = len(v)
        head = bytes([0x90 | n]) if n < 16 else (b"\xdc" + struct.pack(">H", n) if n < 65536 else b"\xdd" + struct.pack(">I", n))
        return head + b"".join(enc(x) for x in v)
    if isinstance(v, dict):
        n = len(v)
        head = bytes([0x80 | n]) if n < 16 else (b"\xde" + struct.pack(">H", n) if n < 65536 else b"\xdf" + struct.pack(">I", n))
        items = sorted(v.items(), key=lambda kv: kv[0].encode())
        return head + b"".join(enc(k) + enc(x) for k, x in items)
    raise TypeError(type(v))


def H(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def sign_bytes(tag: str, chain_id: str, body: Any) -> bytes:
    return enc([tag, chain_id, body])


# --------------------------------------------------------------- §5 proof check


def bit(h: bytes, i: int) -> int:
    return (h[i // 8] >> (7 - i % 8)) & 1


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: dict[str, Any]) -> bool:
    sibs = [bytes.fromhex(s) for s in proof["siblings"]]
    kh = H(key)
    leaf = proof["leaf"]
    if value is not None:
        if leaf is None or bytes.fromhex(leaf[0]) != kh or bytes.fromhex(leaf[1]) != H(value):
            return False
        h = H(b"JMT::LeafNode" + kh + H(value))
    elif leaf is None:
        h = b"SPARSE_MERKLE_PLACEHOLDER_HASH__"
    else:
        other = bytes.fromhex(leaf[0])
        if other == kh or any(bit(other, i) != bit(kh, i) for i in range(len(sibs))):
            return False
        h = H(b"JMT::LeafNode" + other + bytes.fromhex(leaf[1]))
    for i in range(len(sibs) - 1, -1, -1):
        h = H(b"JMT::IntrnalNode" + (sibs[i] + h if bit(kh, i) else h + sibs[i]))
    return h == root


# --------------------------------------------------------------- §8 HTTP


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/msgpack")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


HEADER_BIN = {"prev", "txs_root", "evidence_root", "state_root", "validators", "next_validators",
              "proposer", "last_commit"}  # fmt: skip


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from ads_ledger.testing.devnet import Network, create  # only to start the processes under test

    d = tmp_path_factory.mktemp("spec") / "net"
    info = create(d, 4)
    net = Network(d)
    try:
        net.start_all()
        net.wait_height(1, timeout=60)
        yield info
    finally:
        for i in list(net.procs):
            net.kill(i)


def test_client_from_spec_alone(devnet: dict[str, Any]) -> None:
    chain = devnet["chain_id"]
    api = devnet["nodes"][0]["api"]
    status, st = http("GET", api + "/status")
    assert status == 200 and st["chain_id"] == chain

    device = nacl.signing.SigningKey.generate()
    owner = nacl.signing.SigningKey.generate()
    cp, owner_pub = bytes(device.verify_key), bytes(owner.verify_key)
    # §4 device attestation: the (TEST) manufacturer in device-ca/ vouches for the key, chain id ""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_dir = Path(devnet["device_ca"])
    leaf = x509.load_pem_x509_certificate((ca_dir / "test-manufacturer.pem").read_bytes())
    factory_key = serialization.load_pem_private_key((ca_dir / "test-manufacturer.key.pem").read_bytes(), None)
    assert isinstance(factory_key, ec.EllipticCurvePrivateKey)
    leaf_der = leaf.public_bytes(serialization.Encoding.DER)
    statement = {"device": cp, "model": "SPEC-1", "issued_at": int(time.time() * 1000) - 60_000}
    factory_sig = factory_key.sign(sign_bytes("ads/device/1", "", statement), ec.ECDSA(hashes.SHA256()))
    attestation = {"statement": statement, "issuer_certs": [leaf_der], "issuer_sig": factory_sig}
    unsigned = {"type": "cp.propose", "signer": cp, "nonce": 1, "body": {"owner": owner_pub, "device": attestation}}
    msg = sign_bytes("ads/tx/1", chain, unsigned)
    txid = H(msg)
    env = enc({**unsigned, "auth": [[cp, device.sign(msg).signature]]})

    status, r = http("POST", api + "/txs?wait=commit", env)
    assert status == 200, r
    assert r["txid"] == txid.hex() and r["ok"] is True and isinstance(r["height"], int)
    height = r["height"]

    # the same tx again is not a second transaction: its id is the same
    status, t = http("GET", api + f"/txs/{txid.hex()}")
    assert status == 200 and t["height"] == height

    status, rec = http("GET", api + f"/chargepoints/{cp.hex()}?height={height}")
    assert status == 200 and rec["height"] == height
    value = bytes.fromhex(rec["value"])
    device_field = {"model": "SPEC-1", "issuer": hashlib.sha256(leaf_der).digest()}
    assert value == enc({"owner": None, "pending": owner_pub, "epoch": 0, "grants": [], "updated": height,
                         "device": device_field})  # fmt: skip

    status, sh = http("GET", api + f"/commits/{height}")
    assert status == 200
    hdr = {k: (bytes.fromhex(v) if k in HEADER_BIN else v) for k, v in sh["header"].items()}
    block_id = H(enc(hdr))
    status, vs = http("GET", api + f"/validators/{height}")
    vals = [[bytes.fromhex(v["pub"]), v["power"]] for v in vs["validators"]]
    assert H(enc(vals)) == hdr["validators"]
    c = sh["commit"]
    assert c["height"] == height and bytes.fromhex(c["block"]) == block_id
    vote = sign_bytes("ads/vote/1", chain, {"type": 2, "height": height, "round": c["round"], "block": block_id})
    power = 0
    for idx, sig in c["sigs"]:
        nacl.signing.VerifyKey(vals[idx][0]).verify(vote, bytes.fromhex(sig))
        power += vals[idx][1]
    assert 3 * power > 2 * sum(p for _, p in vals)

    assert verify_proof(hdr["state_root"], b"cp/" + cp, value, rec["proof"])
    assert not verify_proof(hdr["state_root"], b"cp/" + cp, value + b"x", rec["proof"])
    # an unknown charge point: 200, value null, a non-inclusion proof that verifies
    other = bytes(nacl.signing.SigningKey.generate().verify_key)
    status, none = http("GET", api + f"/chargepoints/{other.hex()}?height={height}")
    assert status == 200 and none["value"] is None
    assert verify_proof(hdr["state_root"], b"cp/" + other, None, none["proof"])

    # a tampered signature is refused before inclusion with a typed 4xx
    bad = enc({**unsigned, "nonce": 2, "auth": [[cp, bytes(64)]]})
    status, err = http("POST", api + "/txs", bad)
    assert 400 <= status < 500 and err["error"]["code"] == "bad_signature"


def rfc6962_root(leaves: list[bytes]) -> bytes:
    """DESIGN §6: the RFC 6962 Merkle root of the txids (H(b"") for none)."""
    if not leaves:
        return H(b"")
    if len(leaves) == 1:
        return H(b"\x00" + leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return H(b"\x01" + rfc6962_root(leaves[:k]) + rfc6962_root(leaves[k:]))


def test_block_validity_checked_from_outside(devnet: dict[str, Any]) -> None:
    """DESIGN §6 block validity, as far as a client can check it: the limits in force are read
    with a proof from gov/params; a served block passes every byte-level rule; a gov tx with a
    forged cosigner, or without its quorum, is refused at the door and changes nothing."""
    import msgpack  # a third-party decoder: still none of our code

    chain = devnet["chain_id"]
    api = devnet["nodes"][1]["api"]
    seeds = [bytes.fromhex(json.loads(Path(p).read_text())["seed"]) for p in devnet["gov"]]
    gov = [nacl.signing.SigningKey(s) for s in seeds]
    _, st = http("GET", api + "/status")
    height = st["latest_height"]
    _, sh = http("GET", api + f"/commits/{height}")
    hdr = {k: (bytes.fromhex(v) if k in HEADER_BIN else v) for k, v in sh["header"].items()}

    def state(key: bytes) -> Any:
        _, r = http("GET", api + f"/state/{key.hex()}?height={height}")
        value = bytes.fromhex(r["value"])
        assert verify_proof(hdr["state_root"], key, value, r["proof"])
        return msgpack.unpackb(value, raw=False)

    params = state(b"gov/params")
    for name in ("timeout_propose_ms", "timeout_prevote_ms", "timeout_precommit_ms", "heartbeat_ms",
                 "precision_ms", "message_delay_ms", "max_block_bytes", "max_block_txs",
                 "evidence_max_age", "staleness_limit_ms"):  # fmt: skip
        assert isinstance(params[name], int), name
    members_before = state(b"gov/members")

    # a single member's members.set (threshold 2), and the same with a garbage cosigner
    m0 = bytes(gov[0].verify_key)
    unsigned = {"type": "gov", "signer": m0, "nonce": 1,
                "body": {"action": "members.set", "args": {"members": [m0], "threshold": 1}}}
    msg = sign_bytes("ads/tx/1", chain, unsigned)
    sig0 = gov[0].sign(msg).signature
    forged = enc({**unsigned, "auth": [[m0, sig0], [bytes(gov[1].verify_key), bytes(64)]]})
    status, err = http("POST", api + "/txs", forged)
    assert status == 400 and err["error"]["code"] == "bad_signature", err
    status, err = http("POST", api + "/txs", enc({**unsigned, "auth": [[m0, sig0]]}))
    assert status == 400 and err["error"]["code"] == "quorum", err

    # every block so far passes the byte-level rules a client can check
    seen: set[bytes] = set()
    for h in range(1, height + 1):
        _, blk = http("GET", api + f"/blocks/{h}")
        txs = [bytes.fromhex(t) for t in blk["txs"]]
        assert len(txs) <= params["max_block_txs"] and sum(map(len, txs)) <= params["max_block_bytes"]
        txids = []
        for raw in txs:
            env = msgpack.unpackb(raw, raw=False)
            assert len(raw) <= 32 * 1024 and enc(env) == raw
            signed = sign_bytes("ads/tx/1", chain, {k: env[k] for k in ("type", "signer", "nonce", "body")})
            for pub, sig in env["auth"]:
                nacl.signing.VerifyKey(pub).verify(signed, sig)
            txids.append(H(signed))
        assert not seen & set(txids) and len(set(txids)) == len(txids)
        seen |= set(txids)
        assert rfc6962_root(txids).hex() == blk["header"]["txs_root"]
    time.sleep(1.5)  # a block or two later: the refused txs changed nothing
    _, st2 = http("GET", api + "/status")
    height = st2["latest_height"]
    _, sh = http("GET", api + f"/commits/{height}")
    hdr = {k: (bytes.fromhex(v) if k in HEADER_BIN else v) for k, v in sh["header"].items()}
    assert state(b"gov/members") == members_before
