"""TEST-ONLY eID trust list: a throwaway root CA and an "eID broker" seal certificate.

!!! NOT FOR PRODUCTION !!!  Every certificate made here says so in its subject
("ADS TEST ROOT CA — NOT FOR PRODUCTION"), its keys are written unencrypted, and nothing about
it is qualified under eIDAS. A production genesis lists the real qualified trust service
providers' CA certificates instead (see genesis/README.md).

Used by the tests and by the devnet: `make_trust_list()` builds a root CA, optionally an issuing
CA, and a broker seal certificate (ECDSA P-256 by default, RSA for tests of RSA-PSS);
`write_trust_list(dir)` / `load_trust_list(dir)` store them as PEM; `issue_attestation()` makes
the body of an `attest` transaction signed with the broker key.

The same for manufacturers (DESIGN §4 device attestation, §8 `device-ca/`): `make_device_ca()`
builds a TEST-ONLY manufacturer root and issuing certificate, `write_device_ca(dir)` /
`load_device_ca(dir)` store them, `issue_device_attestation()` vouches for a charge point key.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from ads_ledger.core.crypto import H, sign_bytes

__all__ = [
    "TEST_MARK",
    "TestTrustList",
    "make_trust_list",
    "write_trust_list",
    "load_trust_list",
    "issue_attestation",
    "sign_attestation",
    "subject_pseudonym",
    "TestDeviceCA",
    "make_device_ca",
    "write_device_ca",
    "load_device_ca",
    "issue_device_attestation",
]

TEST_MARK = "NOT FOR PRODUCTION"
KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
ROOT_PEM, ISSUING_PEM, BROKER_PEM, BROKER_KEY_PEM = (
    "test-root-ca.pem",
    "test-issuing-ca.pem",
    "test-broker-seal.pem",
    "test-broker-seal.key.pem",
)


@dataclass(frozen=True)
class TestTrustList:
    """TEST-ONLY: root CA, optional issuing CA, and the broker seal certificate with its key."""

    __test__ = False  # not a pytest test class, whatever its name

    root: x509.Certificate
    broker: x509.Certificate
    broker_key: PrivateKey
    issuing: x509.Certificate | None = None
    root_key: PrivateKey | None = None

    def anchors_der(self) -> list[bytes]:
        return [self.root.public_bytes(serialization.Encoding.DER)]

    def chain_der(self) -> list[bytes]:
        """The issuer chain as an attest tx carries it: leaf first, then intermediates."""
        certs = [self.broker] + ([self.issuing] if self.issuing is not None else [])
        return [c.public_bytes(serialization.Encoding.DER) for c in certs]


def _key(kind: KeyType) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str, org: str = f"ADS test eID trust list ({TEST_MARK})") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DK"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _cert(
    subject: x509.Name,
    key: PrivateKey,
    issuer: x509.Name,
    issuer_key: PrivateKey,
    *,
    ca: bool,
    not_before: dt.datetime,
    not_after: dt.datetime,
    key_usage: x509.KeyUsage,
) -> x509.Certificate:
    pub = key.public_key()
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(key_usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    return b.sign(issuer_key, hashes.SHA256())


def _ku(*, digital_signature: bool = False, content_commitment: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def make_trust_list(
    *,
    key_type: KeyType = "ec",
    intermediate: bool = False,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    leaf_not_after: dt.datetime | None = None,
    leaf_digital_signature: bool = True,
) -> TestTrustList:
    """TEST-ONLY: a fresh root CA and broker seal certificate (and issuing CA if asked).

    Times default to [now − 1 day, now + 10 years]; `leaf_not_after` cuts the broker certificate
    short and `leaf_digital_signature=False` drops digitalSignature from its key usage, for tests.
    """
    now = dt.datetime.now(dt.timezone.utc)
    nb = not_before or now - dt.timedelta(days=1)
    na = not_after or now + dt.timedelta(days=3650)
    root_key = _key("ec")
    root_name = _name(f"ADS TEST ROOT CA — {TEST_MARK}")
    root = _cert(root_name, root_key, root_name, root_key, ca=True, not_before=nb, not_after=na,
                 key_usage=_ku(cert_sign=True))  # fmt: skip
    issuer_name, issuer_key, issuing = root_name, root_key, None
    if intermediate:
        inter_key = _key("ec")
        inter_name = _name(f"ADS TEST ISSUING CA — {TEST_MARK}")
        issuing = _cert(inter_name, inter_key, root_name, root_key, ca=True, not_before=nb,
                        not_after=na, key_usage=_ku(cert_sign=True))  # fmt: skip
        issuer_name, issuer_key = inter_name, inter_key
    broker_key = _key(key_type)
    broker = _cert(
        _name(f"ADS TEST eID BROKER SEAL — {TEST_MARK}", f"ADS test eID broker ({TEST_MARK})"),
        broker_key,
        issuer_name,
        issuer_key,
        ca=False,
        not_before=nb,
        not_after=leaf_not_after or na,
        key_usage=_ku(digital_signature=leaf_digital_signature, content_commitment=True),
    )
    return TestTrustList(root=root, broker=broker, broker_key=broker_key, issuing=issuing, root_key=root_key)


def write_trust_list(tl: TestTrustList, directory: Path) -> dict[str, Path]:
    """Write the certificates and the broker key (unencrypted: TEST-ONLY) as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    files: dict[str, bytes] = {
        ROOT_PEM: tl.root.public_bytes(pem),
        BROKER_PEM: tl.broker.public_bytes(pem),
        BROKER_KEY_PEM: tl.broker_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    }
    if tl.issuing is not None:
        files[ISSUING_PEM] = tl.issuing.public_bytes(pem)
    out = {}
    for name, data in files.items():
        (directory / name).write_bytes(data)
        out[name] = directory / name
    (directory / "README.txt").write_text(
        f"TEST-ONLY eID trust list — {TEST_MARK}.\n"
        "Generated by ads_ledger.testing.trustlist. The broker key is unencrypted.\n"
        "Never list this root CA in a production genesis.\n"
    )
    return out


def load_trust_list(directory: Path) -> TestTrustList:
    root = x509.load_pem_x509_certificate((directory / ROOT_PEM).read_bytes())
    broker = x509.load_pem_x509_certificate((directory / BROKER_PEM).read_bytes())
    key = serialization.load_pem_private_key((directory / BROKER_KEY_PEM).read_bytes(), None)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ValueError("the test broker key must be ECDSA or RSA")
    inter_path = directory / ISSUING_PEM
    issuing = x509.load_pem_x509_certificate(inter_path.read_bytes()) if inter_path.exists() else None
    return TestTrustList(root=root, broker=broker, broker_key=key, issuing=issuing)


def subject_pseudonym(person_id: str, salt: bytes = b"ads-test-broker-salt") -> bytes:
    """The broker's salted hash of a person's eID: a pseudonym, never personal data."""
    return H(salt + person_id.encode("utf-8"))


def sign_attestation(key: PrivateKey, chain_id: str, attestation: dict[str, Any]) -> bytes:
    """ECDSA P-256/SHA-256 (DER) or RSA-PSS/SHA-256 over sign_bytes("ads/attest/1", ...)."""
    msg = sign_bytes("ads/attest/1", chain_id, attestation)
    if isinstance(key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return key.sign(msg, pss, hashes.SHA256())
    return key.sign(msg, ec.ECDSA(hashes.SHA256()))


def issue_attestation(
    tl: TestTrustList,
    chain_id: str,
    account: bytes,
    *,
    issued_at: int,
    expires_at: int,
    subject: bytes | None = None,
    level: str = "substantial",
) -> dict[str, Any]:
    """TEST-ONLY: the body of an `attest` tx for `account`, signed by the test broker."""
    attestation = {
        "account": account,
        "expires_at": expires_at,
        "issued_at": issued_at,
        "level": level,
        "subject": subject if subject is not None else subject_pseudonym(account.hex()),
    }
    return {
        "attestation": attestation,
        "issuer_certs": tl.chain_der(),
        "issuer_sig": sign_attestation(tl.broker_key, chain_id, attestation),
    }


DEVICE_ROOT_PEM, MANUFACTURER_PEM, MANUFACTURER_KEY_PEM = (
    "test-device-root.pem",
    "test-manufacturer.pem",
    "test-manufacturer.key.pem",
)


@dataclass(frozen=True)
class TestDeviceCA:
    """TEST-ONLY: a manufacturer root (a `device` anchor) and the issuing certificate and key
    the factory signs device statements with."""

    __test__ = False

    root: x509.Certificate
    manufacturer: x509.Certificate
    manufacturer_key: PrivateKey

    def anchors_der(self) -> list[bytes]:
        return [self.root.public_bytes(serialization.Encoding.DER)]

    def chain_der(self) -> list[bytes]:
        return [self.manufacturer.public_bytes(serialization.Encoding.DER)]

    def issuer(self) -> bytes:
        """H(leaf DER): what `issuers.revoke` names to end this manufacturer."""
        return H(self.chain_der()[0])


def make_device_ca(
    *,
    name: str = "ADS Test Chargers",
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    leaf_not_after: dt.datetime | None = None,
) -> TestDeviceCA:
    """TEST-ONLY: a fresh manufacturer root and issuing certificate (ECDSA P-256)."""
    now = dt.datetime.now(dt.timezone.utc)
    nb = not_before or now - dt.timedelta(days=1)
    na = not_after or now + dt.timedelta(days=3650)
    org = f"{name} ({TEST_MARK})"
    root_key = _key("ec")
    root_name = _name(f"{name} TEST DEVICE ROOT — {TEST_MARK}", org)
    root = _cert(root_name, root_key, root_name, root_key, ca=True, not_before=nb, not_after=na,
                 key_usage=_ku(cert_sign=True))  # fmt: skip
    leaf_key = _key("ec")
    leaf = _cert(_name(f"{name} TEST FACTORY — {TEST_MARK}", org), leaf_key, root_name, root_key,
                 ca=False, not_before=nb, not_after=leaf_not_after or na,
                 key_usage=_ku(digital_signature=True))  # fmt: skip
    return TestDeviceCA(root=root, manufacturer=leaf, manufacturer_key=leaf_key)


def write_device_ca(ca: TestDeviceCA, directory: Path) -> dict[str, Path]:
    """Write the manufacturer root, issuing certificate and key (unencrypted: TEST-ONLY)."""
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    files = {
        DEVICE_ROOT_PEM: ca.root.public_bytes(pem),
        MANUFACTURER_PEM: ca.manufacturer.public_bytes(pem),
        MANUFACTURER_KEY_PEM: ca.manufacturer_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    }
    for fname, data in files.items():
        (directory / fname).write_bytes(data)
    (directory / MANUFACTURER_KEY_PEM).chmod(0o600)
    (directory / "README.txt").write_text(
        f"TEST-ONLY charge point manufacturer CA — {TEST_MARK}.\n"
        f"{DEVICE_ROOT_PEM} is anchored in the testnet genesis with purpose `device`;\n"
        f"{MANUFACTURER_PEM} and its unencrypted key sign device statements\n"
        "(chargepoint-agent init --test-manufacturer DIR). Never anchor it in production.\n"
    )
    return {n: directory / n for n in files}


def load_device_ca(directory: Path) -> TestDeviceCA:
    root = x509.load_pem_x509_certificate((directory / DEVICE_ROOT_PEM).read_bytes())
    leaf = x509.load_pem_x509_certificate((directory / MANUFACTURER_PEM).read_bytes())
    key = serialization.load_pem_private_key((directory / MANUFACTURER_KEY_PEM).read_bytes(), None)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ValueError("the test manufacturer key must be ECDSA or RSA")
    return TestDeviceCA(root=root, manufacturer=leaf, manufacturer_key=key)


def issue_device_attestation(
    ca: TestDeviceCA, device: bytes, *, issued_at: int, model: str = "ADS-SIM-22"
) -> dict[str, Any]:
    """TEST-ONLY: the `device` attestation a factory ships with charge point key `device`."""
    statement = {"device": device, "issued_at": issued_at, "model": model}
    msg = sign_bytes("ads/device/1", "", statement)
    key = ca.manufacturer_key
    if isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(msg, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    else:
        sig = key.sign(msg, ec.ECDSA(hashes.SHA256()))
    return {"issuer_certs": ca.chain_der(), "issuer_sig": sig, "statement": statement}
