"""The CA bundle of a TLS CA rotation: the signing CA first (tls-init signs with the first one)."""

import pytest

from components.tls_ca import ca_bundle, pem_certificates, rotation_values

pytestmark = pytest.mark.unit


def cert(body: str) -> str:
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


OLD, NEW, OTHER = cert("T0xE\nb2xk"), cert("TkVX"), cert("T1RI")


def test_certificates_are_split_and_normalised():
    text = "comment\r\n" + OLD.replace("\n", "\r\n") + "\n\n  " + NEW.replace("\nTkVX", "\n  TkVX  ", 1)
    assert pem_certificates(text) == [OLD, NEW]


@pytest.mark.parametrize("text, message", [
    ("", "no PEM certificate"),
    ("just text", "no PEM certificate"),
    (OLD + "-----BEGIN EC PRIVATE KEY-----\nS0VZ\n-----END EC PRIVATE KEY-----\n", "a EC PRIVATE KEY block"),
])
def test_no_certificate_or_a_key_is_refused(text, message):
    with pytest.raises(ValueError, match=message):
        pem_certificates(text)


def test_the_signing_ca_comes_first_and_nothing_twice():
    assert ca_bundle(NEW, OLD) == NEW + OLD
    assert ca_bundle(OLD, NEW) == OLD + NEW
    assert ca_bundle(NEW, OLD + NEW, OTHER + OLD) == NEW + OLD + OTHER
    assert ca_bundle(NEW) == NEW


def test_the_signing_ca_is_one_certificate():
    with pytest.raises(ValueError, match="one certificate, got 2"):
        ca_bundle(OLD + NEW, OTHER)


def test_rotation_stages():
    assert rotation_values(OLD, NEW) == [(OLD + NEW, "old"), (NEW + OLD, "new"), (NEW, "new")]
