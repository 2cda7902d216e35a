"""A node's home directory and its `config.toml` (DESIGN §8).

Home layout:
  config.toml            this file's settings, documented inline
  genesis.json           the chain's genesis document
  node_key.json          the P2P identity key (Ed25519 seed, hex)
  validator_key.json     the consensus signing key (absent on a non-validator)
  data/state.lmdb/       blocks, commits, authenticated state (ads_ledger.node.storage.store)
  data/wal/              the consensus write-ahead log
  data/signer_state.json the double-sign guard's last signed (height, round, step)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ads_ledger.client import tomlconfig
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.errors import AdsError
from ads_ledger.node.mempool import MIN_PER_SIGNER

__all__ = ["ConfigError", "NodeConfig", "load_config", "write_config", "load_key", "write_key",
           "parse_hostport"]  # fmt: skip


class ConfigError(AdsError):
    """The node's configuration or home directory is wrong; the message says how to fix it."""


def parse_hostport(s: str) -> tuple[str, int]:
    host, sep, port = s.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{s!r} is not host:port")
    return host.strip("[]"), int(port)


@dataclass
class NodeConfig:
    home: Path
    moniker: str = "node"
    # [p2p]
    p2p_listen: str = "127.0.0.1:26656"
    peers: list[str] = field(default_factory=list)  # "node_id@host:port"
    p2p_allow: list[str] = field(default_factory=list)  # extra node ids accepted inbound
    max_frame_bytes: int = 8 * 1024 * 1024
    # [api]
    api_listen: str = "127.0.0.1:26657"
    api_tx_rate_per_client: int = 4000  # POST /txs per second per client address (0: no limit)
    api_tx_burst_per_client: int = 8000
    # [mempool]
    mempool_max_txs: int = 20000
    mempool_max_bytes: int = 64 * 1024 * 1024
    mempool_max_per_signer: int = MIN_PER_SIGNER
    mempool_max_per_client: int = 0  # 0: no bound (a full pool still evicts the busiest client)
    # [storage]
    keep_versions: int = 10000
    keep_blocks: int = 0  # 0: every block's body is kept
    # [log]
    log_format: str = "human"
    log_level: str = "info"
    # keys of an older config.toml that no longer belong here (consensus timing and block
    # limits live on chain, in gov/params: DESIGN §6); the node warns and ignores them
    ignored: list[str] = field(default_factory=list)

    @property
    def genesis_path(self) -> Path:
        return self.home / "genesis.json"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def node_key_path(self) -> Path:
        return self.home / "node_key.json"

    @property
    def validator_key_path(self) -> Path:
        return self.home / "validator_key.json"


_SECTIONS: dict[str, dict[str, tuple[str, str]]] = {
    # section -> toml key -> (dataclass field, comment)
    "node": {"moniker": ("moniker", "a human name for logs and /status")},
    "p2p": {
        "listen": ("p2p_listen", "host:port the node accepts validator connections on"),
        "peers": ("peers", 'peers to dial, "node_id@host:port" (node_id = hex node public key)'),
        "allow": ("p2p_allow", "node ids (besides the peers above) accepted inbound, e.g. full "
                  "nodes that sync from this one; any other key is refused"),
        "max_frame_bytes": ("max_frame_bytes", "largest P2P frame accepted (a block travels in one)"),
    },
    "api": {
        "listen": ("api_listen", ("host:port of the HTTP API (DESIGN §8); keep it on loopback "
                                  "or behind a reverse proxy")),
        "tx_rate_per_client": ("api_tx_rate_per_client", (
            "POST /txs per second one client address may sustain (429 rate_limited past it; "
            "0: no limit); behind a reverse proxy every client shares the proxy's address")),
        "tx_burst_per_client": ("api_tx_burst_per_client",
                                "POST /txs one client address may send at once before the rate applies"),
    },
    "mempool": {
        "max_txs": ("mempool_max_txs", "pending transactions held at most"),
        "max_bytes": ("mempool_max_bytes", "pending bytes held at most"),
        "max_per_signer": ("mempool_max_per_signer", (
            f"pending transactions held per signer at most (≥ {MIN_PER_SIGNER}; 429 signer_busy "
            "past it)")),
        "max_per_client": ("mempool_max_per_client", (
            "pending transactions held per API client address at most (429 client_busy past it); "
            "0: no bound, a full mempool still evicts from the client holding the most")),
    },
    "storage": {
        "keep_versions": ("keep_versions", "state versions kept for proofs at older heights; older ones are pruned"),
        "keep_blocks": ("keep_blocks", (
            "newest blocks whose bodies (txs, evidence, results) are kept; older ones are deleted, "
            "their headers and commits stay. 0: keep all. A pruned node cannot serve block sync, "
            "GET /blocks or GET /txs below that")),
    },
    "log": {
        "format": ("log_format", '"human" or "json"'),
        "level": ("log_level", '"debug", "info", "warning" or "error"'),
    },
}


def write_config(cfg: NodeConfig) -> Path:
    path = cfg.home / "config.toml"
    path.write_text(tomlconfig.render(
        cfg, _SECTIONS, "ADS validator node configuration. Every key is optional; shown are this node's values."))
    return path


def load_config(home: Path | str) -> NodeConfig:
    """Read HOME/config.toml; ConfigError names the file, key and fix for anything wrong."""
    home = Path(home).resolve()
    path = home / "config.toml"
    doc = tomlconfig.read(path, ConfigError, "create a home with `ads testnet init` or `ads init`")
    cfg = NodeConfig(home=home)
    consensus = doc.get("consensus")
    if isinstance(consensus, dict):
        cfg.ignored.extend(f"[consensus] {k}" for k in consensus)  # now genesis/gov params
    tomlconfig.apply(cfg, doc, _SECTIONS, path, ConfigError, skip=frozenset({"consensus"}))
    for attr in ("p2p_listen", "api_listen"):
        parse_hostport(getattr(cfg, attr))
    _check_limits(path, cfg)
    if cfg.log_format not in ("human", "json"):
        raise ConfigError(f'{path}: [log] format must be "human" or "json"')
    return cfg


def _check_limits(path: Path, cfg: NodeConfig) -> None:
    """Admission bounds a node cannot run with (zero pools, a per-signer bound below what a
    client's nonce chain needs) are configuration errors, not runtime surprises."""
    if cfg.mempool_max_txs < 1 or cfg.mempool_max_bytes < 1:
        raise ConfigError(f"{path}: [mempool] max_txs and max_bytes must be ≥ 1")
    if cfg.mempool_max_per_signer < MIN_PER_SIGNER:
        raise ConfigError(f"{path}: [mempool] max_per_signer must be ≥ {MIN_PER_SIGNER} (a client "
                          "chains that many txs per key between blocks)")
    if cfg.mempool_max_per_client < 0:
        raise ConfigError(f"{path}: [mempool] max_per_client must be ≥ 0 (0: no bound)")
    if cfg.api_tx_rate_per_client < 0:
        raise ConfigError(f"{path}: [api] tx_rate_per_client must be ≥ 0 (0 turns the limit off)")
    if cfg.api_tx_burst_per_client < 1:
        raise ConfigError(f"{path}: [api] tx_burst_per_client must be ≥ 1")
    if cfg.keep_blocks < 0:
        raise ConfigError(f"{path}: [storage] keep_blocks must be ≥ 0 (0: keep every block)")


def write_key(path: Path, key: SigningKey, kind: str) -> None:
    """Write a key file readable by the owner only."""
    data = json.dumps({"kind": kind, "pub": key.pub.hex(), "seed": key.seed.hex()}, indent=1)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data + "\n")


def load_key(path: Path) -> SigningKey:
    try:
        d = json.loads(Path(path).read_text())
        key = SigningKey(bytes.fromhex(d["seed"]))
    except FileNotFoundError:
        raise ConfigError(f"key file {path} does not exist") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"key file {path} is not a valid key file: {e}") from e
    if d.get("pub") and d["pub"] != key.pub.hex():
        raise ConfigError(f"key file {path}: pub does not match the seed")
    return key
