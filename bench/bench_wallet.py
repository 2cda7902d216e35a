"""Wallet benchmarks on a loopback 4-validator devnet (real node processes, the wallet's Python
API and the `ads` CLI as a user runs it).

  unlock    opening an encrypted key: argon2id (libsodium INTERACTIVE limits) + AEAD, per key
  submit    `Ledger.submit` of a `grant` → committed (`--trials`), beside the chain's block
            interval measured in the same run (a tx cannot commit faster than its block)
  verified  `Verifier.record(cp)` on a warm trust store: the latest header verified (commit
            signatures against the trusted set) and the record's proof checked, per read;
            beside one Ed25519 verify × the signatures it checks
  cli       wall time of `ads cp show CP --json` and `ads grant … --json` in a fresh process
            (Python start, imports, key unlock, the round trips)

  .venv/bin/python bench/bench_wallet.py [--trials 30] [--cli 5]

One JSON line per figure, then a human summary, with the raw limits of bench/limits.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ads_ledger.core.crypto import SigningKey
from ads_ledger.testing.devnet import Network, create
from ads_ledger.testing.trustlist import issue_attestation, load_trust_list
from ads_ledger.wallet import Ledger, Verifier, txs
from ads_ledger.wallet.keystore import Keyring
from limits import limits_or_error as limits  # type: ignore[import-not-found]  # bench/limits.py
from limits import pct

SRC = str(Path(__file__).resolve().parents[1] / "src")
os.environ["PYTHONPATH"] = SRC  # the node and CLI subprocesses run this tree's code


def figure(name: str, **kw: Any) -> dict[str, Any]:
    row = {"figure": name, **kw}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--cli", type=int, default=5)
    a = ap.parse_args()
    lim = limits()
    print(json.dumps({"limits": lim}), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-wallet-"))
    out: list[dict[str, Any]] = []
    net = None
    try:
        kr = Keyring(tmp / "keyring")
        owner, prov = SigningKey.generate(), SigningKey.generate()
        kr.add("owner", owner, "bench passphrase")
        ts = []
        for _ in range(5):
            t = time.perf_counter()
            kr.load("owner", "bench passphrase")
            ts.append(time.perf_counter() - t)
        out.append(figure("unlock", p50_ms=round(statistics.median(ts) * 1000, 1)))

        info = create(tmp / "net", 4)
        net = Network(tmp / "net")
        net.start_all()
        net.wait_height(2, timeout=60)
        chain = info["chain_id"]
        now = int(time.time() * 1000)
        tl = load_trust_list(Path(info["eid"]))
        device = SigningKey.generate()
        with Ledger(net.apis) as ledger:
            ledger.submit(owner, *txs.attest(issue_attestation(tl, chain, owner.pub, issued_at=now - 60_000,
                                                               expires_at=now + 86_400_000), owner.pub))  # fmt: skip
            sig = device.sign_tagged("ads/own/1", chain, {"cp": device.pub, "epoch": 0, "owner": owner.pub})
            from ads_ledger.testing.trustlist import issue_device_attestation, load_device_ca

            att = issue_device_attestation(load_device_ca(Path(info["nodes"][0]["home"]).parent / "device-ca"),
                                           device.pub, issued_at=now - 60_000)  # fmt: skip
            ledger.submit(owner, *txs.claim(device.pub, sig, att))
            h0, t0 = ledger.height(), time.monotonic()
            lat = []
            for i in range(a.trials):
                spec = txs.GrantSpec(cp=device.pub, grantee=prov.pub, scopes=("meter.read",), not_before=now,
                                     not_after=now + 86_400_000 + i)  # fmt: skip
                t = time.perf_counter()
                ledger.submit(owner, *txs.grant(spec, now))
                lat.append(time.perf_counter() - t)
            blocks = ledger.height() - h0
            interval = (time.monotonic() - t0) / max(1, blocks)
            out.append(figure("submit", trials=a.trials, p50_ms=round(pct(lat, 0.5) * 1000, 1),
                              p99_ms=round(pct(lat, 0.99) * 1000, 1), block_interval_ms=round(interval * 1000, 1)))  # fmt: skip
            v = Verifier(ledger, tmp / "light")
            v.record(device.pub)  # the first read takes the trust root
            rl = []
            for _ in range(a.trials):
                t = time.perf_counter()
                got = v.record(device.pub)
                rl.append(time.perf_counter() - t)
            sigs = got.signers
            ed = lim.get("ed25519_verify_per_s", 0)
            out.append(figure("verified", reads=a.trials, p50_ms=round(pct(rl, 0.5) * 1000, 1),
                              p99_ms=round(pct(rl, 0.99) * 1000, 1), signatures=sigs, grants=len(got.value["grants"]),
                              sig_floor_ms=round(1000 * sigs / ed, 2) if ed else None))  # fmt: skip

        env = {**os.environ, "ADS_KEYRING": str(tmp / "keyring"), "ADS_PASSPHRASE": "bench passphrase",
               "ADS_NODE": net.apis[0], "XDG_CONFIG_HOME": str(tmp / "xdg")}  # fmt: skip
        for name, args in (("cli_cp_show", ["cp", "show", device.pub.hex()]),
                           ("cli_grant", ["grant", device.pub.hex(), prov.pub.hex(), "--scope", "status.read",
                                          "--for", "1h", "--key", "owner"])):  # fmt: skip
            ws = []
            for _ in range(a.cli):
                t = time.perf_counter()
                p = subprocess.run([sys.executable, "-m", "ads_ledger.cli.main", *args, "--json"], env=env,
                                   capture_output=True, text=True, timeout=120)  # fmt: skip
                ws.append(time.perf_counter() - t)
                if p.returncode != 0:
                    raise RuntimeError(p.stdout + p.stderr)
            out.append(figure(name, runs=a.cli, p50_ms=round(statistics.median(ws) * 1000)))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import ads_ledger.cli.main"], env=env, check=True)
        out.append(figure("cli_import_only", ms=round((time.perf_counter() - t) * 1000)))
    finally:
        if net is not None:
            for i in list(net.procs):
                net.kill(i)
        shutil.rmtree(tmp, ignore_errors=True)
    f = {r["figure"]: r for r in out}
    print(f"limits: Ed25519 verify {lim.get('ed25519_verify_per_s', 0):,}/s")
    print(f"unlock (argon2id + AEAD):       {f['unlock']['p50_ms']} ms")
    print(f"submit grant → committed:        p50 {f['submit']['p50_ms']} ms, p99 {f['submit']['p99_ms']} ms "
          f"(block interval {f['submit']['block_interval_ms']} ms)")
    print(f"verified record read (warm):     p50 {f['verified']['p50_ms']} ms, p99 {f['verified']['p99_ms']} ms "
          f"({f['verified']['signatures']} signatures: {f['verified']['sig_floor_ms']} ms of Ed25519)")
    print(f"`ads cp show` / `ads grant`:     {f['cli_cp_show']['p50_ms']} ms / {f['cli_grant']['p50_ms']} ms wall "
          f"(of which imports {f['cli_import_only']['ms']} ms)")


if __name__ == "__main__":
    main()
