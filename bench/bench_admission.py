"""Spam that may not write state: what a refused transaction costs, and what it leaves behind.

    .venv/bin/python bench/bench_admission.py [--txs 2000]

A real Ledger on LMDB (tmp dir) with a test genesis (an eID and a device anchor). For each kind
of spam a key with no identity can send — `cp.propose` without a device attestation, with a
forged one, with one from an unanchored manufacturer, with an oversized certificate chain, and
a `grant` on a charge point that does not exist — from `--txs` fresh keys:

- **admission**: `TxIntake.parse` + `verify_and_admit` (signature check, mempool, `check_tx`
  against committed state), as `POST /txs` runs it; µs per refused tx and its ratio to one raw
  Ed25519 verification measured in the same run; how many were admitted (must be 0);
- **inclusion**: a Byzantine proposer puts them all in blocks anyway; the blocks are committed
  through `Ledger.commit_block` and the state root, the number of state entries and the bytes
  of state written are compared before and after (must be unchanged: 0 bytes per refused tx).

Then the certificate work of one `attest` check (path validation and the issuer signature,
the validated-chain cache cleared each time): a normal chain against crafted ones — self-issued
intermediates carrying the issuing CA's name, up to the 4-certificate limit, and one over it
(refused before any parsing or signature).

Prints one JSON line per kind and a human table.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ads_ledger.core.crypto import H, SigningKey, verify  # noqa: E402
from ads_ledger.core.types import PRECOMMIT, Commit, Vote  # noqa: E402
from ads_ledger.node.api.backend import Refusal  # noqa: E402
from ads_ledger.node.intake import TxIntake  # noqa: E402
from ads_ledger.node.ledger import Ledger  # noqa: E402
from ads_ledger.node.mempool import Mempool  # noqa: E402
from ads_ledger.state.envelope import make_envelope  # noqa: E402
from ads_ledger.testing import device_attestation, key, make_test_genesis  # noqa: E402
from ads_ledger.testing.trustlist import (  # noqa: E402
    issue_device_attestation,
    make_device_ca,
    make_trust_list,
)

CHAIN = "ads-bench"
VALS = [key(f"validator{i}") for i in range(4)]


def ed25519_us() -> float:
    k = SigningKey(H(b"bench"))
    msg = b"x" * 300
    sig = k.sign(msg)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        for _ in range(200):
            verify(k.pub, sig, msg)
        n += 200
    return (time.perf_counter() - t0) / n * 1e6


def spam_kinds(now: int) -> dict[str, Callable[[SigningKey], bytes]]:
    stranger = make_device_ca(name="Unanchored Chargers")
    victim = SigningKey.generate().pub
    forged_sig = device_attestation(victim)["issuer_sig"]  # a real signature, over another device

    def propose(k: SigningKey, device: dict[str, Any] | None) -> bytes:
        body: dict[str, Any] = {"owner": k.pub}
        if device is not None:
            body["device"] = device
        return make_envelope(CHAIN, "cp.propose", k, 1, body)

    def grant(k: SigningKey) -> bytes:
        body = {"cp": H(k.pub), "grantee": k.pub, "scopes": ["meter.read"], "not_before": now,
                "not_after": now + 86_400_000, "limits": {}, "exclusive": False, "priority": 0,
                "redelegate": 0, "parent": None}  # fmt: skip
        return make_envelope(CHAIN, "grant", k, 1, body)

    return {
        "propose_no_attestation": lambda k: propose(k, None),
        "propose_forged_attestation": lambda k: propose(k, {**device_attestation(k.pub), "issuer_sig": forged_sig}),
        "propose_unanchored_maker": lambda k: propose(k, issue_device_attestation(stranger, k.pub, issued_at=now)),
        "propose_chain_too_large": lambda k: propose(
            k, {**device_attestation(k.pub), "issuer_certs": device_attestation(k.pub)["issuer_certs"] * 5}),
        "grant_unknown_cp": grant,
    }  # fmt: skip


def cert_work(ed_us: float, n: int = 50) -> list[dict[str, Any]]:
    """µs of one attest verification: normal chain vs crafted chains (see the module doc)."""
    import datetime as dt

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from ads_ledger.state import certs
    from ads_ledger.state.identity import verify_attestation
    from ads_ledger.state.reasons import TxRejected
    from ads_ledger.testing.trustlist import _cert, _ku, issue_attestation

    tl = make_trust_list(intermediate=True)
    now = int(time.time() * 1000)
    body = issue_attestation(tl, CHAIN, bytes(32), issued_at=now - 1000, expires_at=now + DAY_MS)
    name = tl.issuing.subject  # type: ignore[union-attr]
    nb = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    fakes = []
    for _ in range(8):  # self-issued "issuing CAs": the path builder must consider each
        k = ec.generate_private_key(ec.SECP256R1())
        fakes.append(_cert(name, k, name, k, ca=True, not_before=nb, not_after=nb + dt.timedelta(days=90),
                           key_usage=_ku(cert_sign=True)).public_bytes(serialization.Encoding.DER))  # fmt: skip
    leaf, issuing = body["issuer_certs"]
    chains = {
        "attest_normal_chain": [leaf, issuing],
        "attest_crafted_4_certs": [leaf, fakes[0], fakes[1], issuing],
        "attest_crafted_4_no_path": [leaf, *fakes[:3]],
        "attest_crafted_9_certs": [leaf, *fakes[:7], issuing],
    }
    rows = []
    base = None
    for kind, chain in chains.items():
        b = {**body, "issuer_certs": chain}
        code = "ok"
        t0 = time.perf_counter()
        for _ in range(n):
            certs._VALIDATED.clear()
            try:
                verify_attestation(CHAIN, b, bytes(32), tl.anchors_der(), now)
            except TxRejected as e:
                code = e.code
        us = (time.perf_counter() - t0) / n * 1e6
        base = base or us
        rows.append({"bench": "cert_work", "kind": kind, "code": code, "us": round(us, 1),
                     "per_normal_attest": round(us / base, 2), "per_ed25519_verify": round(us / ed_us, 2)})  # fmt: skip
    return rows


DAY_MS = 86_400_000


def state_size(led: Ledger) -> tuple[int, int]:
    """(entries, bytes) of the latest state, counted from the store's leaves."""
    items = led.store.scan_prefix(b"", limit=10**7)
    return len(items), sum(len(k) + len(v) for k, v in items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--txs", type=int, default=2000, help="spam txs per kind (one fresh key each)")
    args = ap.parse_args()
    ed_us = ed25519_us()
    now = int(time.time() * 1000)
    genesis = make_test_genesis(make_trust_list().anchors_der(), chain_id=CHAIN, genesis_time=now - 60_000)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        led = Ledger.open(Path(tmp) / "db", genesis)
        intake = TxIntake(CHAIN, led, Mempool(max_txs=100_000), lock=threading.RLock(),
                          counters=collections.defaultdict(int), now=lambda: int(time.time() * 1000))  # fmt: skip
        def commit(txs: list[bytes]) -> None:
            h = led.height + 1
            block = led.assemble(h, now + 1000 * h, VALS[0].pub, led.commit_at(h - 1), txs)
            votes = [Vote(PRECOMMIT, h, 0, block.block_id(), v.pub).signed(CHAIN, v) for v in VALS]
            led.commit_block(block, Commit.from_votes(led.validators_at(h), votes))

        commit([])  # the genesis state is written with the first block
        for kind, make in spam_kinds(now).items():
            txs = [make(SigningKey.generate()) for _ in range(args.txs)]
            t0 = time.perf_counter()
            results = []
            for i in range(0, len(txs), 256):
                batch = []
                for raw in txs[i : i + 256]:
                    try:
                        batch.append(intake.parse(raw))
                    except Refusal as r:  # refused by shape at parse, before any signature
                        results.append(r)
                intake.verify_and_admit(batch)
                results.extend(it.result for it in batch)
            adm_us = (time.perf_counter() - t0) / len(txs) * 1e6
            admitted = sum(r is True for r in results)
            codes = collections.Counter(getattr(r, "code", str(r)) for r in results)
            # a Byzantine proposer includes them anyway
            root0, size0 = led.store.root(), state_size(led)
            per_block = genesis.params["max_block_txs"]
            for i in range(0, len(txs), per_block):
                commit(txs[i : i + per_block])
            root1, size1 = led.store.root(), state_size(led)
            row = {
                "bench": "refused_spam", "kind": kind, "txs": len(txs), "admitted": admitted,
                "refusal_codes": dict(codes), "admission_us_per_tx": round(adm_us, 1),
                "ed25519_verify_us": round(ed_us, 1), "admission_per_verify": round(adm_us / ed_us, 2),
                "state_root_unchanged": root0 == root1, "state_entries_added": size1[0] - size0[0],
                "state_bytes_per_refused_tx": (size1[1] - size0[1]) / len(txs),
            }  # fmt: skip
            rows.append(row)
            print(json.dumps(row))
        led.close()
    work = cert_work(ed_us)
    for w in work:
        print(json.dumps(w))
    print(f"\nrefused spam, {args.txs} fresh keys per kind; one raw Ed25519 verify = {ed_us:.1f} µs")
    print(f"{'kind':30} {'admitted':>8} {'µs/tx':>8} {'× verify':>9} {'state B/tx':>10}  codes")
    for r in rows:
        print(f"{r['kind']:30} {r['admitted']:>8} {r['admission_us_per_tx']:>8.1f} "
              f"{r['admission_per_verify']:>9.2f} {r['state_bytes_per_refused_tx']:>10.1f}  "
              f"{','.join(r['refusal_codes'])}")  # fmt: skip
    print("\ncertificate work of one attest check")
    print(f"{'chain':30} {'code':>16} {'µs':>8} {'× normal':>9} {'× verify':>9}")
    for w in work:
        print(f"{w['kind']:30} {w['code']:>16} {w['us']:>8.1f} {w['per_normal_attest']:>9.2f} "
              f"{w['per_ed25519_verify']:>9.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
