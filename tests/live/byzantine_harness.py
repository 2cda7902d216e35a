"""A live 4-validator devnet with one Byzantine validator (node 3) and a fresh full node.

`ByzNet` starts nodes 0–2 honest and node 3 with `--byzantine NAME`, on a genesis with the
given `gov/params`. A fresh full node (its own key, not a validator; allowed by the honest
nodes) waits in `DIR/fresh` until `start_fresh()`. The checks every Byzantine test makes:
`assert_safe` (the honest nodes hold the same block ids at every height they share),
`wait_live` (they keep committing), `assert_fresh_syncs` (the fresh node syncs the whole chain
to the same ids), and `event`/`counter` read an honest node's /metrics to see the fault.
`close()` kills every process it started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ads_ledger.client.http import NodeClient
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.types import Block
from ads_ledger.node.config import NodeConfig, load_config, write_config, write_key
from ads_ledger.node.p2p.handshake import node_id
from ads_ledger.testing.devnet import Network, create
from ads_ledger.testing.testnet import free_port

HONEST = (0, 1, 2)
BYZ = 3
TRACEBACK = "Traceback (most recent call last)"


class ByzNet:
    def __init__(self, tmp: Path, behaviour: str, params: dict[str, int] | None = None,
                 fresh_peers_byz: bool = False) -> None:  # fmt: skip
        d = tmp / "net"
        self.info = create(d, 4, params=params)
        self.behaviour = behaviour
        self.chain_id: str = self.info["chain_id"]
        homes = sorted(p for p in d.glob("node*") if p.is_dir())
        # the fresh full node: a key of its own outside the validator set
        self.fresh_home = d / "fresh"
        self.fresh_home.mkdir()
        fresh_key = SigningKey.generate()
        write_key(self.fresh_home / "node_key.json", fresh_key, "p2p node key")
        write_key(self.fresh_home / "validator_key.json", SigningKey.generate(), "not a validator (TEST-ONLY)")
        (self.fresh_home / "genesis.json").write_text((d / "genesis.json").read_text())
        peers_of_fresh = [*HONEST, BYZ] if fresh_peers_byz else list(HONEST)
        for i in peers_of_fresh:
            cfg = load_config(homes[i])
            cfg.p2p_allow = [*cfg.p2p_allow, node_id(fresh_key.pub)]
            write_config(cfg)
        fcfg = NodeConfig(home=self.fresh_home, moniker="fresh", p2p_listen=f"127.0.0.1:{free_port()}",
                          api_listen=f"127.0.0.1:{free_port()}",
                          peers=[f"{self.info['nodes'][i]['node_id']}@{self.info['nodes'][i]['p2p']}"
                                 for i in peers_of_fresh])  # fmt: skip
        write_config(fcfg)
        self.fresh_api = f"http://{fcfg.api_listen}"
        self.fresh: subprocess.Popen[bytes] | None = None
        self.net = Network(d)
        try:
            for i in HONEST:
                self.net.start(i)
            self.net.start(BYZ, args=("--byzantine", behaviour))
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------- processes

    def close(self) -> None:
        if self.fresh is not None and self.fresh.poll() is None:
            self.fresh.kill()
            self.fresh.wait(10)
        for i in list(self.net.procs):
            self.net.kill(i)

    def start_fresh(self) -> None:
        logf = open(self.fresh_home / "node.log", "ab")
        self.fresh = subprocess.Popen(
            [sys.executable, "-m", "ads_ledger.cli.main", "node", "start", "--home", str(self.fresh_home)],
            env=dict(os.environ), stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)  # fmt: skip
        logf.close()

    def log(self, i: int | str) -> str:
        home = self.fresh_home if i == "fresh" else self.net.homes[int(i)]
        return (home / "node.log").read_text(errors="replace")

    # ---------------------------------------------------------------- reads

    def client(self, i: int | str, timeout_s: float = 10.0) -> NodeClient:
        return NodeClient(self.fresh_api if i == "fresh" else self.net.apis[int(i)], timeout_s=timeout_s)

    def height(self, i: int | str) -> int:
        try:
            with self.client(i, timeout_s=3.0) as c:
                return int(c.status()["latest_height"])
        except Exception:
            return -1

    def honest_heights(self) -> list[int]:
        return [self.height(i) for i in HONEST]

    def metrics(self, i: int | str) -> dict[str, float]:
        """/metrics as {sample name with labels: value}."""
        with self.client(i, timeout_s=5.0) as c:
            text = c.metrics_text()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def event(self, i: int | str, name: str) -> float:
        """ads_consensus_events_total{event=name} of node i."""
        return self.metrics(i).get(f'ads_consensus_events_total{{event="{name}"}}', 0.0)

    def counter(self, i: int | str, name: str) -> float:
        """ads_{name}_total of node i."""
        return self.metrics(i).get(f"ads_{name}_total", 0.0)

    def honest_sum(self, what: str, *, event: bool = True) -> float:
        return sum(self.event(i, what) if event else self.counter(i, what) for i in HONEST)

    def block_ids(self, i: int | str, upto: int, start: int = 1) -> list[str]:
        with self.client(i) as c:
            return [c.commit(h)[0].block_id().hex() for h in range(start, upto + 1)]

    def blocks(self, i: int | str, upto: int) -> list[Block]:
        out = []
        with self.client(i) as c:
            for h in range(1, upto + 1):
                status, _, data = c.request("GET", f"/blocks/{h}")
                assert status == 200, f"GET /blocks/{h} answered {status}"
                out.append(_block_from_json(json.loads(data)))
        return out

    # ---------------------------------------------------------------- checks

    def check_running(self) -> None:
        for i, p in self.net.procs.items():
            if p.poll() is not None:
                raise AssertionError(f"node{i} exited ({p.returncode}):\n{self.log(i)[-3000:]}")

    def wait_live(self, blocks: int, timeout: float) -> int:
        """Every honest node commits `blocks` more blocks within `timeout` s; returns the
        lowest honest height reached."""
        start = max(self.honest_heights())
        deadline = time.monotonic() + timeout
        while True:
            hs = self.honest_heights()
            if min(hs) >= start + blocks:
                return min(hs)
            self.check_running()
            if time.monotonic() > deadline:
                raise AssertionError(f"honest nodes did not commit {blocks} blocks past {start} in "
                                     f"{timeout} s: heights {hs} (Byzantine {self.behaviour})")  # fmt: skip
            time.sleep(0.3)

    def wait_until(self, what: str, cond: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            self.check_running()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.5)

    def assert_safe(self) -> int:
        """The honest nodes hold the same block id at every height they share; returns it."""
        top = min(self.honest_heights())
        assert top > 0, "the honest nodes committed nothing"
        ref = self.block_ids(HONEST[0], top)
        for i in HONEST[1:]:
            assert self.block_ids(i, top) == ref, f"node{i} and node{HONEST[0]} disagree below {top}"
        return top

    def assert_fresh_syncs(self, timeout: float = 40.0) -> None:
        """A fresh full node, started now, syncs the whole chain to the honest block ids."""
        target = min(self.honest_heights())
        self.start_fresh()
        deadline = time.monotonic() + timeout
        while self.height("fresh") < target:
            assert self.fresh is not None
            if self.fresh.poll() is not None:
                raise AssertionError(f"the fresh node exited:\n{self.log('fresh')[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the fresh node reached {self.height('fresh')} of {target} in {timeout} s:\n"
                                     + self.log("fresh")[-3000:])  # fmt: skip
            time.sleep(0.3)
        assert self.block_ids("fresh", target) == self.block_ids(HONEST[0], target), \
            "the fresh node synced other blocks than the honest nodes"

    def assert_no_traceback(self) -> None:
        for i in [*HONEST, BYZ, "fresh"]:  # the Byzantine node too: a kit that crashed attacked nothing
            text = self.log(i) if i != "fresh" or self.fresh is not None else ""
            assert TRACEBACK not in text, f"node {i} logged a traceback:\n{text[text.find(TRACEBACK) - 500:][:4000]}"


def _block_from_json(j: dict[str, Any]) -> Block:
    """A block as GET /blocks/{h} renders it (bytes as hex) back to a Block."""

    def unhex(v: Any, key: str = "") -> Any:
        if isinstance(v, dict):
            return {k: unhex(x, k) for k, x in v.items()}
        if isinstance(v, list):
            return [unhex(x, key) for x in v]
        if isinstance(v, str) and key not in ("chain_id", "kind"):
            return bytes.fromhex(v)
        return v

    obj = {k: unhex(j[k], k) for k in ("header", "txs", "evidence", "last_commit")}
    return Block.from_obj(obj)
