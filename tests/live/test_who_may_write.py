"""Who may write state, on a live network (DESIGN §4; docs/state.md).

A `cp.propose` without a device attestation, or with a forged, expired, revoked or wrongly
anchored one, is refused over `POST /txs` with its typed reason and leaves no trace in state;
after governance removes the eID anchor an owner's identity was attested under, that owner
cannot grant any more, while its existing grant stays.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from livenet import running_devnet

from ads_ledger.client.http import ApiResponseError, NodeClient
from ads_ledger.core import codec
from ads_ledger.core.crypto import H, SigningKey
from ads_ledger.node.config import load_key
from ads_ledger.state.envelope import make_envelope
from ads_ledger.state.records import acct_key
from ads_ledger.testing.devnet import Network
from ads_ledger.testing.trustlist import (
    TestDeviceCA,
    issue_attestation,
    issue_device_attestation,
    load_device_ca,
    load_trust_list,
    make_device_ca,
)

DAY = 86_400_000


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_devnet(tmp_path_factory, "who", height=1) as n:
        yield n


class Chain:
    """The network as one client sees it: nonces, gov txs, typed refusals."""

    def __init__(self, net: Network) -> None:
        self.net, self.info = net, net.info
        self.id: str = net.info["chain_id"]
        self.c = NodeClient(net.apis[0], timeout_s=30.0)
        self.members = [load_key(Path(p)) for p in net.info["gov"]]
        self.nonces: dict[bytes, int] = {}
        self.now = int(time.time() * 1000)

    def tx(self, signer: SigningKey, ttype: str, body: dict[str, Any], cosigners: list[SigningKey] = []) -> bytes:
        if signer.pub not in self.nonces:  # members act in several tests: ask the chain
            raw = self.c.state(acct_key(signer.pub))[1]
            self.nonces[signer.pub] = 0 if raw is None else codec.decode(raw)["nonce"]  # type: ignore[index]
        n = self.nonces[signer.pub] + 1
        return make_envelope(self.id, ttype, signer, n, body, cosigners)

    def commit(self, signer: SigningKey, ttype: str, body: dict[str, Any], cosigners: list[SigningKey] = []) -> dict[str, Any]:
        r = self.c.submit_tx(self.tx(signer, ttype, body, cosigners), wait_commit=True)
        assert r["ok"] is True, r
        self.nonces[signer.pub] = self.nonces.get(signer.pub, 0) + 1
        return r

    def refused(self, signer: SigningKey, ttype: str, body: dict[str, Any], code: str) -> str:
        with pytest.raises(ApiResponseError) as e:
            self.c.submit_tx(self.tx(signer, ttype, body), wait_commit=True)
        assert e.value.status == 400 and e.value.code == code, (e.value.code, str(e.value))
        return str(e.value)

    def gov(self, action: str, args: dict[str, Any]) -> dict[str, Any]:
        return self.commit(self.members[0], "gov", {"action": action, "args": args}, [self.members[1]])

    def untouched(self, k: SigningKey) -> None:
        """No charge point record and no account for this key, at the latest height."""
        assert self.c.chargepoint(k.pub)["value"] is None
        assert self.c.state(acct_key(k.pub))[1] is None


def test_device_attestation_refusals_change_nothing(net: Network) -> None:
    ch = Chain(net)
    ca = load_device_ca(Path(ch.info["device_ca"]))
    tl = load_trust_list(Path(ch.info["eid"]))
    owner = SigningKey.generate()

    def propose(dev: SigningKey, device: dict[str, Any] | None, code: str) -> str:
        body: dict[str, Any] = {"owner": owner.pub} | ({} if device is None else {"device": device})
        if code == "ok":
            ch.commit(dev, "cp.propose", body)
            return ""
        why = ch.refused(dev, "cp.propose", body, code)
        ch.untouched(dev)
        return why

    def att(dev: SigningKey, maker: TestDeviceCA = ca) -> dict[str, Any]:
        return issue_device_attestation(maker, dev.pub, issued_at=ch.now - DAY)

    dev = SigningKey.generate()
    assert "manufacturer" in propose(dev, None, "device_required")
    other = SigningKey.generate()
    propose(dev, {**att(dev), "issuer_sig": att(other)["issuer_sig"]}, "bad_issuer_sig")  # forged
    propose(dev, att(other), "device_mismatch")  # another device's attestation
    # wrongly anchored: the eID broker's seal (an `eid` anchor) signing as if a manufacturer
    broker_as_maker = TestDeviceCA(root=tl.root, manufacturer=tl.broker, manufacturer_key=tl.broker_key)
    propose(dev, att(dev, broker_as_maker), "untrusted_chain")
    propose(dev, att(dev, make_device_ca(name="Unknown Maker")), "untrusted_chain")
    # expired: a manufacturer governance anchors whose factory certificate has run out
    now = dt.datetime.now(dt.timezone.utc)
    stale = make_device_ca(name="Stale Maker", not_before=now - dt.timedelta(days=30),
                           leaf_not_after=now - dt.timedelta(days=1))  # fmt: skip
    ch.gov("anchors.add", {"cert": stale.anchors_der()[0], "purpose": "device"})
    propose(dev, att(dev, stale), "cert_expired")
    # and the good one works
    propose(dev, att(dev), "ok")
    rec = ch.c.chargepoint(dev.pub)
    assert rec["device"] == {"issuer": ca.issuer().hex(), "model": "ADS-SIM-22"}, rec
    # revoked: governance ends the test factory's certificate; no new charge point from it
    ch.gov("issuers.revoke", {"issuer": ca.issuer()})
    later = SigningKey.generate()
    propose(later, att(later), "issuer_revoked")
    # a charge point already on the ledger is not affected
    ch.commit(dev, "cp.propose", {"owner": SigningKey.generate().pub})


def test_identity_whose_anchor_was_removed_cannot_grant(net: Network) -> None:
    ch = Chain(net)
    tl = load_trust_list(Path(ch.info["eid"]))
    maker = make_device_ca(name="Second Maker")
    ch.gov("anchors.add", {"cert": maker.anchors_der()[0], "purpose": "device"})
    owner, dev, prov = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    ch.commit(owner, "attest", issue_attestation(tl, ch.id, owner.pub, issued_at=ch.now - 60_000,
                                                 expires_at=2**64 - 1))  # fmt: skip
    _, raw, _ = ch.c.state(acct_key(owner.pub))
    ident = codec.decode(raw)["identity"]  # type: ignore[arg-type]
    assert ident["anchor"] == H(tl.anchors_der()[0])
    assert ident["expires_at"] < 2**63, "an attestation outlived its certificates"
    ch.commit(dev, "cp.propose", {"owner": owner.pub, "device": issue_device_attestation(
        maker, dev.pub, issued_at=ch.now - DAY)})  # fmt: skip
    ch.commit(owner, "cp.accept", {"cp": dev.pub})
    grant = {"cp": dev.pub, "grantee": prov.pub, "scopes": ["meter.read"], "not_before": ch.now,
             "not_after": ch.now + DAY, "limits": {}, "exclusive": False, "priority": 5,
             "redelegate": 0, "parent": None}  # fmt: skip
    g = ch.commit(owner, "grant", grant)
    ch.gov("anchors.remove", {"cert": tl.anchors_der()[0], "purpose": "eid"})
    why = ch.refused(owner, "grant", {**grant, "priority": 6}, "identity_revoked")
    assert "anchor" in why
    rec = ch.c.chargepoint(dev.pub)
    assert [x["id"] for x in rec["grants"]] == [g["txid"][:32]], rec  # the existing grant stays
    ch.gov("anchors.add", {"cert": tl.anchors_der()[0], "purpose": "eid"})  # leave the net as found
