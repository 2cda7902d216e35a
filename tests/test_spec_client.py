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
    from ads_ledger.devnet import Network, create  # only to start the processes under test

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
    unsigned = {"type": "cp.propose", "signer": cp, "nonce": 1, "body": {"owner": owner_pub}}
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
    assert value == enc({"owner": None, "pending": owner_pub, "epoch": 0, "grants": [], "updated": height})

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
