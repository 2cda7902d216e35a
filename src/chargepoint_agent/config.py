"""The agent's home (DESIGN §8): `config.toml`, the device key and the device attestation.

    DIR/config.toml               [api] [ledger] [commands] [driver] [ocpp]
    DIR/device_key.json           {"pub": hex, "seed": hex}, mode 0600 (stands in for a secure element)
    DIR/device_attestation.msgpack  the manufacturer's device attestation (§4), shipped with the device
    DIR/state/                    LMDB: replay state, audit log, trusted header, access list

`load_config` refuses anything unknown or mistyped with a ConfigError naming the file, the
key and the fix.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ads_ledger.client import tomlconfig
from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.core.errors import AdsError

__all__ = [
    "AgentConfig",
    "ConfigError",
    "write_config",
    "load_config",
    "write_device_key",
    "load_device_key",
    "load_device_attestation",
    "KEY_FILE",
    "ATTESTATION_FILE",
]

KEY_FILE = "device_key.json"
ATTESTATION_FILE = "device_attestation.msgpack"


class ConfigError(AdsError):
    """The agent's home is missing something or holds something wrong; the message says what."""


@dataclass
class AgentConfig:
    home: Path
    api_listen: str = "127.0.0.1:8480"
    nodes: list[str] = field(default_factory=list)
    chain_id: str = ""
    trust_height: int = 0
    trust_hash: str = ""
    trusting_period_ms: int = 14 * 86_400_000
    poll_ms: int = 10_000
    staleness_limit_ms: int = 0
    skew_ms: int = 30_000
    driver: str = "sim"
    ocpp_listen: str = ""
    ocpp_basic_auth_password: str = ""
    ocpp_station_id: str = ""
    ocpp_tls_cert: str = ""
    ocpp_tls_key: str = ""
    ocpp_call_timeout_ms: int = 10_000
    ocpp_meter_stale_ms: int = 60_000

    @property
    def state_dir(self) -> Path:
        return self.home / "state"


# section -> toml key -> (field, comment)
_SECTIONS: dict[str, dict[str, tuple[str, str]]] = {
    "api": {"listen": ("api_listen", "host:port of POST /commands and GET /status (DESIGN §7, §8)")},
    "ledger": {
        "nodes": ("nodes", "node API URLs: the first is the primary, the others witnesses"),
        "chain_id": ("chain_id", "the ADS this charge point belongs to"),
        "trust_height": ("trust_height", "trust root: a header height ..."),
        "trust_hash": ("trust_hash", "... and its block id (hex), obtained out of band"),
        "trusting_period_ms": ("trusting_period_ms", "a trusted header older than this is not built on"),
        "poll_ms": ("poll_ms", "verified poll of the access list at least this often, events or not"),
        "staleness_limit_ms": ("staleness_limit_ms", "0: the chain's gov/params staleness_limit_ms"),
    },
    "commands": {"skew_ms": ("skew_ms", "clock skew allowed before a command's issued_at")},
    "driver": {"kind": ("driver", '"sim" (the simulated charger) or "ocpp201"')},
    "ocpp": {
        "listen": ("ocpp_listen", "host:port the OCPP 2.0.1 station connects to (driver ocpp201)"),
        "basic_auth_password": ("ocpp_basic_auth_password", "the station's HTTP Basic password (security profile 1), if any"),
        "station_id": ("ocpp_station_id", 'the only station id accepted ("": any)'),
        "tls_cert": ("ocpp_tls_cert", "PEM certificate chain: wss:// (security profile 2, with the password)"),
        "tls_key": ("ocpp_tls_key", "PEM private key of tls_cert"),
        "call_timeout_ms": ("ocpp_call_timeout_ms", "a station that does not answer within this → driver_error"),
        "meter_stale_ms": ("ocpp_meter_stale_ms", "meter.read asks the station (TriggerMessage) when older"),
    },
}


def write_config(cfg: AgentConfig) -> Path:
    path = cfg.home / "config.toml"
    path.write_text(tomlconfig.render(cfg, _SECTIONS, "ADS charge-point agent configuration (chargepoint-agent init wrote it)."))
    if cfg.ocpp_basic_auth_password:
        path.chmod(0o600)  # it holds the station's password
    return path


def load_config(home: Path | str) -> AgentConfig:
    home = Path(home).resolve()
    path = home / "config.toml"
    doc = tomlconfig.read(path, ConfigError, f"create the home with `chargepoint-agent init --home {home}`")
    cfg = AgentConfig(home=home)
    tomlconfig.apply(cfg, doc, _SECTIONS, path, ConfigError)
    if not cfg.nodes or not all(isinstance(n, str) and n.startswith("http") for n in cfg.nodes):
        raise ConfigError(f"{path}: [ledger] nodes must list at least one http:// node URL")
    if cfg.driver not in ("sim", "ocpp201"):
        raise ConfigError(f'{path}: [driver] kind must be "sim" or "ocpp201"')
    if cfg.driver == "ocpp201":
        host, _, port = cfg.ocpp_listen.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f'{path}: [ocpp] listen must be "host:port" with driver ocpp201')
        if bool(cfg.ocpp_tls_cert) != bool(cfg.ocpp_tls_key):
            raise ConfigError(f"{path}: [ocpp] tls_cert and tls_key go together")
        if cfg.ocpp_tls_cert and not cfg.ocpp_basic_auth_password:
            raise ConfigError(f"{path}: [ocpp] TLS is security profile 2, which also needs basic_auth_password")
        if not 100 <= cfg.ocpp_call_timeout_ms <= 300_000:
            raise ConfigError(f"{path}: [ocpp] call_timeout_ms must be 100..300000")
    if cfg.trust_hash and len(cfg.trust_hash) != 64:
        raise ConfigError(f"{path}: [ledger] trust_hash must be 64 hex characters")
    return cfg


def write_device_key(home: Path, key: SigningKey) -> Path:
    """DIR/device_key.json, readable by the owner only."""
    path = home / KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps({"pub": key.pub.hex(), "seed": key.seed.hex()}) + "\n")
    return path


def load_device_key(home: Path) -> SigningKey:
    path = home / KEY_FILE
    try:
        d = json.loads(path.read_text())
        key = SigningKey(bytes.fromhex(d["seed"]))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; run `chargepoint-agent init --home {home}`") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} is not a device key file: {e}") from e
    if d.get("pub") != key.pub.hex():
        raise ConfigError(f"{path}: pub does not match the seed")
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path} is readable by others; chmod 600 {path}")
    return key


def load_device_attestation(home: Path) -> dict[str, Any]:
    path = home / ATTESTATION_FILE
    try:
        att = codec.decode(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(
            f"{path} does not exist: a real charge point ships with its manufacturer's attestation; "
            "on a testnet, `chargepoint-agent init --test-manufacturer DIR/device-ca` makes one"
        ) from None
    except Exception as e:
        raise ConfigError(f"{path} is not canonical msgpack: {e}") from e
    if type(att) is not dict or set(att) != {"statement", "issuer_certs", "issuer_sig"}:
        raise ConfigError(f"{path} is not a device attestation (statement, issuer_certs, issuer_sig)")
    return att
