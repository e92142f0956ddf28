"""The value of ``global.tls.caCert`` during a TLS CA rotation: a bundle of CA certificates.

The chart gives the same bytes to two readers (docs/day-two.md, "The TLS CA"):

- every server's ``ca_file`` (and the gateways', the injector's and the Jobs' CA file), where
  each certificate of the bundle is trusted;
- the tls-init hook, which signs the server certificates with ``caKey`` and takes only the
  *first* certificate of the file as their issuer (consul-k8s 1.2.1,
  ``control-plane/helper/cert/tls_util.go``, ``ParseCert``); a first certificate that is not
  ``caKey``'s makes it fail ("x509: provided PrivateKey doesn't match parent's PublicKey").

So the CA whose key is ``caKey`` goes first. Pure text handling: no key is read here.
"""

from __future__ import annotations

import re

BEGIN, END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.S)


def pem_certificates(text: str) -> list[str]:
    """Each CERTIFICATE block of `text`, normalised (base64 lines as given, LF endings, one
    trailing newline). Text outside the blocks is ignored, as Go's pem.Decode does; any other
    block (a private key pasted by mistake) or no certificate at all is refused."""
    blocks = []
    for kind, body in _BLOCK.findall(text.replace("\r\n", "\n")):
        if kind != "CERTIFICATE":
            raise ValueError(f"a {kind} block where only certificates belong")
        lines = [line.strip() for line in body.splitlines() if line.strip()]
        blocks.append("\n".join([BEGIN, *lines, END]) + "\n")
    if not blocks:
        raise ValueError("no PEM certificate found")
    return blocks


def ca_bundle(signing: str, *also_trusted: str) -> str:
    """`signing` (the one CA certificate whose key is caKey) first, then every certificate of
    `also_trusted` not already in, in the order given."""
    first = pem_certificates(signing)
    if len(first) != 1:
        raise ValueError(f"the signing CA must be one certificate, got {len(first)}")
    bundle = list(first)
    for text in also_trusted:
        bundle += [c for c in pem_certificates(text) if c not in bundle]
    return "".join(bundle)


def rotation_values(old: str, new: str) -> list[tuple[str, str]]:
    """(caCert, which key) of each stage of a rotation from `old` to `new`, in order; every stage
    runs in every datacenter (the primary first) and its servers restart, before the next stage:

    1. trust both, still sign with the old key;
    2. sign with the new key, still trust the old CA;
    3. the new CA alone.
    """
    return [(ca_bundle(old, new), "old"), (ca_bundle(new, old), "new"), (ca_bundle(new), "new")]
