"""Command verification in-process (DESIGN §7): p50/p99 beside one bare Ed25519 verify.

    .venv/bin/python bench/bench_command.py [--n 20000]

`chargepoint_agent.verify.check_command` on accepted delegate commands (a 7.4 kW charging
profile under a grant, the record holding 64 grants, the maximum by default) and on refusals
(bad signature, stale list). Each timing is one call; the raw Ed25519 verification of the
same machine is timed the same way in the same run. Targets: p50 ≤ 1.5× one verify, p99 ≤ 300 µs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from ads_ledger.core import codec  # noqa: E402
from ads_ledger.core.crypto import SigningKey, sign_bytes, verify  # noqa: E402
from ads_ledger.wallet.commands import sign_command  # noqa: E402
from chargepoint_agent.verify import AccessList, check_command  # noqa: E402
from limits import pct  # type: ignore[import-not-found]  # bench/limits.py

CHAIN = "ads-bench"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20_000)
    args = ap.parse_args()
    now = int(time.time() * 1000)
    cp, owner, prov = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    grants = []
    for i in range(64):
        grants.append({"id": bytes([i]) * 16, "issuer": owner.pub, "grantee": SigningKey.generate().pub,
                       "scopes": ["charging.profile"], "not_before": now - 1000, "not_after": now + 10**9,
                       "limits": {"max_power_w": 11_000}, "exclusive": False, "priority": 10,
                       "redelegate": 0, "parent": None, "height": 1})  # fmt: skip
    grants[40]["grantee"] = prov.pub
    acl = AccessList(owner.pub, tuple(sorted(grants, key=lambda g: g["id"])), 10, now, 60_000)
    profile = {"profile": {"id": 1, "valid_from": now, "valid_to": now + 7_200_000, "periods": [[0, 7400]]}}
    cmds = [sign_command(prov, CHAIN, cp=cp.pub, action="charging.profile.set", params=profile, seq=s,
                         issued_at=now, expires_at=now + 60_000, grant=grants[40]["id"])
            for s in range(1, args.n + 1)]  # fmt: skip
    forged = codec.decode(cmds[0])
    forged["sig"] = bytes(64)
    bad = codec.encode(forged)
    stale = AccessList(acl.owner, acl.grants, 10, now - 120_000, 60_000)
    msg = sign_bytes("ads/cmd/1", CHAIN, codec.decode(cmds[0])["cmd"])
    sig = codec.decode(cmds[0])["sig"]
    last = {"seq": 0}

    def seq_of(_: bytes) -> int:
        return last["seq"]

    def timed(fn: object, n: int) -> list[float]:
        out = []
        for i in range(n):
            t0 = time.perf_counter()
            fn(i)  # type: ignore[operator]
            out.append((time.perf_counter() - t0) * 1e6)
        return out

    ver = timed(lambda i: verify(prov.pub, sig, msg), args.n)

    def ok(i: int) -> None:
        v = check_command(cmds[i], chain_id=CHAIN, cp=cp.pub, acl=acl, now_ms=now, last_seq=seq_of)
        assert v.ok, v
        last["seq"] = v.cmd["seq"]  # type: ignore[index]

    acc = timed(ok, args.n)
    refused_sig = timed(lambda i: check_command(bad, chain_id=CHAIN, cp=cp.pub, acl=acl, now_ms=now,
                                                 last_seq=seq_of), args.n // 4)  # fmt: skip
    refused_stale = timed(lambda i: check_command(cmds[i], chain_id=CHAIN, cp=cp.pub, acl=stale, now_ms=now,
                                                   last_seq=seq_of), args.n // 4)  # fmt: skip
    v50 = statistics.median(ver)
    rows = {
        "ed25519_verify": ver, "accepted_delegate_command": acc,
        "refused_bad_signature": refused_sig, "refused_stale_acl": refused_stale,
    }  # fmt: skip
    for name, xs in rows.items():
        print(json.dumps({"bench": "command_verify", "case": name, "n": len(xs), "p50_us": round(pct(xs, 0.5), 1),
                          "p99_us": round(pct(xs, 0.99), 1), "p50_per_verify": round(pct(xs, 0.5) / v50, 2)}))  # fmt: skip
    print(f"\ncommand verification, {args.n} commands, 64 grants in the record")
    for name, xs in rows.items():
        print(f"  {name:28} p50 {pct(xs, 0.5):7.1f} µs  p99 {pct(xs, 0.99):7.1f} µs  "
              f"({pct(xs, 0.5) / v50:.2f}× one verify)")  # fmt: skip
    print("  targets: accepted p50 ≤ 1.5× one verify, p99 ≤ 300 µs")


if __name__ == "__main__":
    main()
