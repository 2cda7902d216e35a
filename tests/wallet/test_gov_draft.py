"""Governance drafts (wallet.gov) and `ads gov` offline: round trips, signatures bound to the chain
and the args, hostile files refused as bad_draft, the submitted envelope, the tally."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from ads_ledger.cli.main import main
from ads_ledger.core import codec
from ads_ledger.core.crypto import SigningKey
from ads_ledger.state.envelope import parse_envelope
from ads_ledger.wallet.errors import WalletError
from ads_ledger.wallet.gov import Draft, members_set, params_set, validators_set

CHAIN = "ads-devnet"


def keys(n: int) -> list[SigningKey]:
    return [SigningKey(bytes([i + 1]) * 32) for i in range(n)]


def draft(signer: SigningKey, chain: str = CHAIN) -> Draft:
    return Draft.propose(chain, signer.pub, 3, "validators.set", validators_set([(b"\x09" * 32, 0)]))


def test_round_trip() -> None:
    a, b = keys(2)
    d = draft(a)
    d.sign(a)
    d.sign(b)
    back = Draft.decode(d.encode())
    assert back == d and back.txid == d.txid and back.encode() == d.encode()


def test_signature_for_another_chain_is_invalid() -> None:
    a, b = keys(2)
    other = draft(a, "ads-other")
    other.sign(b)
    d = draft(a)
    d.auth = [*other.auth]  # b's signature was made over another chain's sign bytes
    d.sign(a)
    t = d.tally([a.pub, b.pub], 2)
    assert t.invalid == [b.pub] and t.valid == [a.pub] and t.missing == 1 and not t.ready


def test_tampering_after_signing_invalidates_every_signature() -> None:
    a, b = keys(2)
    d = draft(a)
    d.sign(a)
    d.sign(b)
    d.args = validators_set([(b"\x08" * 32, 0)])
    t = Draft.decode(d.encode()).tally([a.pub, b.pub], 2)
    assert t.invalid == [a.pub, b.pub] and t.valid == [] and not t.ready


def test_signing_twice_is_refused() -> None:
    (a,) = keys(1)
    d = draft(a)
    d.sign(a)
    with pytest.raises(WalletError) as e:
        d.sign(a)
    assert e.value.code == "already_signed" and len(d.auth) == 1


@pytest.mark.parametrize("data", [
    b"", b"\xff\x00garbage", codec.encode([1, 2]), codec.encode({"chain_id": CHAIN}),
    codec.encode({"chain_id": 1, "tx": {}}), b"\x00" * (64 * 1024 + 1),
])  # fmt: skip
def test_decode_refuses_hostile_files(data: bytes) -> None:
    with pytest.raises(WalletError) as e:
        Draft.decode(data)
    assert e.value.code == "bad_draft"


def test_decode_refuses_wrong_shapes_and_duplicates() -> None:
    a, b = keys(2)
    d = draft(a)
    d.sign(a)
    good = codec.decode(d.encode())

    def bad(**tx: object) -> None:
        obj = {"chain_id": CHAIN, "tx": {**good["tx"], **tx}}
        with pytest.raises(WalletError) as e:
            Draft.decode(codec.encode(obj))
        assert e.value.code == "bad_draft"

    bad(auth=[d.auth[0], d.auth[0]])  # one signer twice
    bad(type="grant")
    bad(nonce=-1)
    bad(signer=b"\x01" * 31)
    bad(body={"action": "launch.missiles", "args": {}})
    bad(auth=[[a.pub, b"\x00" * 63]])
    bad(extra=1)


def test_envelope_signer_first_and_verifies() -> None:
    a, b, c = keys(3)
    d = draft(a)
    with pytest.raises(WalletError) as e:
        d.envelope()
    assert e.value.code == "quorum"  # the proposer has not signed
    d.sign(b)
    d.sign(a)
    env = parse_envelope(d.envelope())
    assert [p for p, _ in env.auth] == [a.pub, b.pub] and env.signer == a.pub and env.type == "gov"
    env.verify_signatures(CHAIN)
    assert env.txid(CHAIN) == d.txid


def test_tally() -> None:
    a, b, c, x = keys(4)
    d = draft(a)
    for k in (b, x, a):
        d.sign(k)
    t = d.tally([a.pub, b.pub, c.pub], 3)
    assert t.valid == [b.pub, x.pub, a.pub] and t.members == [b.pub, a.pub] and t.strangers == [x.pub]
    assert t.missing == 1 and t.signer_signed and not t.ready
    t = d.tally([a.pub, b.pub, c.pub, x.pub], 3)
    assert t.missing == 0 and t.ready
    assert not draft(a).tally([a.pub], 1).signer_signed


def test_builders_refuse_bad_args() -> None:
    for f in (lambda: validators_set([]), lambda: members_set([b"\x01" * 32], 2), lambda: params_set({"nope": 1}),
              lambda: params_set({"timeout_propose_ms": 1})):
        with pytest.raises(WalletError):
            f()


def test_cli_propose_sign_sign_show(tmp_path: Path) -> None:
    ks = keys(3)
    files = []
    for i, k in enumerate(ks):
        files.append(tmp_path / f"member{i}.key")
        files[-1].write_text(json.dumps({"pub": k.pub.hex(), "seed": k.seed.hex()}))
    out = tmp_path / "d.msgpack"
    run = CliRunner().invoke
    r = run(main, ["gov", "propose", "validators.set", "--update", f"{'09' * 32}:0", "--signer", str(files[0]),
                   "--out", str(out), "--nonce", "1", "--chain-id", CHAIN, "--json"], env={"ADS_NODE": ""})  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["signer"] == ks[0].pub.hex() and doc["nonce"] == 1 and stat.S_IMODE(out.stat().st_mode) == 0o644
    r = run(main, ["gov", "propose", "params.set", "--param", "x=1", "--signer", str(files[0]), "--out", str(out),
                   "--nonce", "1", "--chain-id", CHAIN])  # fmt: skip
    assert r.exit_code == 1 and "exists" in r.output
    for f in files[:2]:
        r = run(main, ["gov", "sign", str(out), "--key", str(f), "--json"])
        assert r.exit_code == 0, r.output
    before = out.read_bytes()
    r = run(main, ["gov", "sign", str(out), "--key", str(files[1]), "--json"])
    assert r.exit_code == 1 and json.loads(r.output)["error"]["code"] == "already_signed"
    assert out.read_bytes() == before
    r = run(main, ["gov", "show", str(out), "--json"], env={"ADS_NODE": ""})
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert [s["pub"] for s in doc["signatures"]] == [ks[0].pub.hex(), ks[1].pub.hex()]
    assert all(s["valid"] for s in doc["signatures"]) and doc["checked"] is None and "no node" in doc["unchecked"]
    r = run(main, ["gov", "show", str(out)], env={"ADS_NODE": ""})
    assert "could not check membership" in r.output and "→ power 0 (removed)" in r.output
    (tmp_path / "junk").write_bytes(b"junk")
    r = run(main, ["gov", "show", str(tmp_path / "junk"), "--json"])
    assert r.exit_code == 1 and json.loads(r.output)["error"]["code"] == "bad_draft"


def test_cli_cert_actions(tmp_path: Path) -> None:
    """anchors.* take a PEM or DER certificate (stored as DER); issuers.revoke --cert revokes H(DER)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from ads_ledger.core.crypto import H

    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(k, hashes.SHA256()))  # fmt: skip
    der = cert.public_bytes(serialization.Encoding.DER)
    (tmp_path / "a.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "a.der").write_bytes(der)
    signer = keys(1)[0].pub.hex()
    base = ["--signer", signer, "--nonce", "1", "--chain-id", CHAIN]
    run = CliRunner().invoke
    r = run(main, ["gov", "propose", "anchors.add", "--cert", str(tmp_path / "a.pem"), "--purpose", "device",
                   "--out", str(tmp_path / "a.msgpack"), *base])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert Draft.decode((tmp_path / "a.msgpack").read_bytes()).args == {"cert": der, "purpose": "device"}
    r = run(main, ["gov", "propose", "issuers.revoke", "--cert", str(tmp_path / "a.der"), "--out",
                   str(tmp_path / "r.msgpack"), *base])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert Draft.decode((tmp_path / "r.msgpack").read_bytes()).args == {"issuer": H(der)}
    r = run(main, ["gov", "propose", "anchors.add", "--cert", str(tmp_path / "r.msgpack"), "--purpose", "eid",
                   "--out", str(tmp_path / "x"), *base, "--json"])  # fmt: skip
    assert r.exit_code == 1 and "not an X.509 certificate" in json.loads(r.output)["error"]["message"]
    assert not (tmp_path / "x").exists()


def test_provider_builders_and_cli_options() -> None:
    from ads_ledger.cli.gov import build_args
    from ads_ledger.wallet.gov import providers_set, providers_suspend
    from ads_ledger.wallet.txs import describe_gov_args

    pub = b"\x02" * 32
    args = build_args("providers.set", (), None, None, None, (), None, (),
                      {"pub": pub.hex(), "name": "Agg", "roles": ("tso", "aggregator"), "cap": "50kW"})  # fmt: skip
    assert args == {"cap_w": 50_000, "name": "Agg", "pub": pub, "roles": ["aggregator", "tso"]}
    assert build_args("providers.set", (), None, None, None, (), None, (),
                      {"pub": pub.hex(), "name": "A", "roles": ()})["cap_w"] is None  # fmt: skip
    assert "cap 50 kW" in describe_gov_args("providers.set", args) and "aggregator, tso" in describe_gov_args(
        "providers.set", args)
    off = build_args("providers.suspend", (), None, None, None, (), None, (), {"pub": pub.hex(), "suspended": True})
    assert off == providers_suspend(pub, True) == {"pub": pub, "suspended": True}
    assert describe_gov_args("providers.suspend", off).startswith("suspend provider")
    for bad in (lambda: providers_set(pub, "A", ["king"], None), lambda: providers_set(pub, "", [], None),
                lambda: providers_set(pub, "A", ["dso", "dso"], None), lambda: providers_set(b"x", "A", [], None),
                lambda: build_args("providers.suspend", (), None, None, None, (), None, (), {"pub": pub.hex()}),
                lambda: build_args("providers.set", (), None, None, None, (), None, (), {"name": "A"})):  # fmt: skip
        with pytest.raises(WalletError):
            bad()
    roles = build_args("params.set", (), None, None, None, (), None, ('scope_roles={"flex": ["dso", "tso"]}',))
    assert roles == {"scope_roles": {"flex": ["dso", "tso"]}}
    for p in ('scope_roles={"flex": ["king"]}', "scope_roles=nope"):
        with pytest.raises(WalletError):
            build_args("params.set", (), None, None, None, (), None, (p,))
