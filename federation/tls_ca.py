"""TLS CA material for ``rotate-tls-ca``: a new CA as the chart's tls-init makes one, and the PEM
bundles the CA Secrets hold. Pure (no cluster, no Pulumi), so the rotation's decisions are tested
on real certificates.

The chart's tls-init signs each server certificate with the CA key and the *first* certificate of
the CA Secret as issuer (consul-k8s ``helper/cert/tls_util.go`` ``ParseCert``), and every reader of
the CA file trusts every certificate in it: so a bundle's order says which CA signs, and its
members which CAs are trusted.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from dataclasses import dataclass, field
from typing import Optional

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# tls-init's GenerateCA: ten years, backdated a minute for clock skew.
VALIDITY = datetime.timedelta(days=3650)
BACKDATE = datetime.timedelta(minutes=1)
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\s.*?-----END CERTIFICATE-----", re.S)


class BadMaterial(ValueError):
    """A certificate or key that does not parse."""


@dataclass(frozen=True)
class CA:
    cert: str
    key: str = field(repr=False)  # the private key (PEM): never printed


def new_ca(now: datetime.datetime | None = None) -> CA:
    """An ECDSA P-256 CA with tls-init's usages; the key as "EC PRIVATE KEY", which tls-init's
    ParseSigner reads."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Consul Agent CA {serial:x}"[:64]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "consul-federation rotate-tls-ca")])
    key_id = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - BACKDATE).not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(key_id, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(key_id), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    return CA(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem)


def certificates(bundle: str) -> list[str]:
    """The bundle's certificates in order, each as one PEM block ending in a newline."""
    return [block.group(0).strip() + "\n" for block in _PEM_CERT.finditer(bundle or "")]


def bundle(*certs: str) -> str:
    return "".join(certs)


def fingerprint(cert: str) -> str:
    """SHA-256 of the certificate's DER, shortened: what the command prints of a CA."""
    return "sha256:" + hashlib.sha256(_cert(cert).public_bytes(serialization.Encoding.DER)).hexdigest()[:16]


def signs(cert: str, key: str) -> bool:
    """Whether `key` is the private key of `cert` (tls-init refuses any other pair)."""
    try:
        private = serialization.load_pem_private_key(key.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise BadMaterial(f"the CA key does not parse: {exc.__class__.__name__}") from None
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    return (_cert(cert).public_key().public_bytes(serialization.Encoding.PEM, raw)
            == private.public_key().public_bytes(serialization.Encoding.PEM, raw))


def issuer_in(cert: str, cas: list[str]) -> Optional[str]:
    """The certificate of `cas` that signed `cert`, or None."""
    leaf = _cert(cert)
    for ca in cas:
        try:
            leaf.verify_directly_issued_by(_cert(ca))
            return ca
        except (ValueError, TypeError, InvalidSignature):
            continue
    return None


def trust_verdict(datacenter: str, trusted: list[str], servers: dict[str, str]) -> tuple[bool, str]:
    """Whether the CA file `trusted` of `datacenter` holds the issuer of every datacenter's server
    certificate (`servers`: datacenter -> certificate): what its servers and gateways need to
    accept every server they meet."""
    if not trusted:
        return False, "its CA file holds no certificate"
    issuers = {dc: issuer_in(cert, trusted) for dc, cert in servers.items()}
    untrusted = sorted(dc for dc, issuer in issuers.items() if issuer is None)
    holds = " + ".join(map(fingerprint, trusted))
    if untrusted:
        return False, (f"its CA file ({holds}) holds no CA of the server certificate of {', '.join(untrusted)}: "
                       "those servers are refused here (a CA rotation out of order? see docs/day-two.md)")
    by = ", ".join(f"{dc} {fingerprint(issuer)}" for dc, issuer in sorted(issuers.items()) if issuer)
    return True, f"trusts {holds}; servers' certificates of {by}"


def _cert(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise BadMaterial(f"a CA certificate does not parse: {exc}") from None
