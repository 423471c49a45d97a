"""Certificate verdicts: a verifying TLS handshake, and which rule the certificate broke."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from cryptography import x509

# OpenSSL X509_V_ERR_* codes (include/openssl/x509_vfy.h) mapped to our verdicts.
_VERIFY_CODE_REASONS = {
    9: "not_yet_valid",
    10: "expired",
    18: "self_signed",  # DEPTH_ZERO_SELF_SIGNED_CERT: the leaf signed itself
    19: "self_signed",  # SELF_SIGNED_CERT_IN_CHAIN: the chain ends in an untrusted self-signed root
    20: "untrusted_issuer",  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY: unknown CA or missing intermediate
    21: "untrusted_issuer",  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    23: "revoked",
    62: "hostname_mismatch",
    64: "hostname_mismatch",  # IP_ADDRESS_MISMATCH
}


def verify_error_reason(error: ssl.SSLCertVerificationError) -> str:
    return _VERIFY_CODE_REASONS.get(error.verify_code, "invalid_certificate")


@dataclass(frozen=True)
class CertFacts:
    subject: str
    issuer: str
    not_after: str  # ISO 8601, UTC


def cert_facts_from_der(der: bytes | None) -> CertFacts | None:
    """Subject, issuer and expiry of a certificate, also one that failed verification."""
    if not der:
        return None
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    return CertFacts(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc.isoformat(),
    )


def peer_cert_der(ssl_object: object) -> bytes | None:
    if isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return ssl_object.getpeercert(binary_form=True)
    return None
