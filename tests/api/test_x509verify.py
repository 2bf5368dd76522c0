"""Table tests: client chains accepted and refused as Go's crypto/x509 ``Certificate.Verify`` does
with ``KeyUsages: [ClientAuth]`` (what k8s.io/apiserver's x509 and requestheader authenticators call).

Each row builds its certificates (``tests.support.x509build``) and gives the presented chain (leaf
first) and the CA bundle; the expectation is the verified chain's subjects or a fragment of Go's error.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapter.api.x509verify import MAX_DEPTH, CertPool, ChainRejected, load_pem_bundle, verify_chain
from tests.support import x509build as xb
from tests.support.procs import require_binary
from tests.support.x509build import CLIENT_AUTH, NOW, Issued, key_usage, make

DAY = dt.timedelta(days=1)
SERVER_AUTH = [ExtendedKeyUsageOID.SERVER_AUTH]
ANY = [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]
CA_KU = key_usage(cert_sign=True, digital_signature=True, key_encipherment=True)
UNKNOWN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1")
Case = tuple[list[Issued], list[Issued]]  # (presented chain, CA bundle)


def ca(cn: str = "ca", issuer: Issued | None = None, **kw: object) -> Issued:
    return make(cn, issuer, **{"ca": True, "ku": CA_KU, **kw})  # type: ignore[arg-type]


def client(issuer: Issued, **kw: object) -> Issued:
    return make("front-proxy-client", issuer, **{"eku": CLIENT_AUTH, **kw})  # type: ignore[arg-type]


def direct(**ca_kw: object) -> Case:
    root = ca(**ca_kw)
    return [client(root)], [root]


def leaf_with(**leaf_kw: object) -> Case:
    root = ca()
    return [client(root, **leaf_kw)], [root]


def via_intermediate(root_kw: dict[str, object] | None = None, inter_kw: dict[str, object] | None = None,
                     send_intermediate: bool = True) -> Case:
    root = ca("root", **(root_kw or {}))
    inter = ca("intermediate", root, **(inter_kw or {}))
    leaf = client(inter)
    return ([leaf, inter] if send_intermediate else [leaf]), [root]


def long_chain(intermediates: int) -> Case:
    root = ca("root")
    chain, issuer = [], root
    for i in range(intermediates):
        issuer = ca(f"intermediate-{i}", issuer)
        chain.insert(0, issuer)
    return [client(issuer), *chain], [root]


def signed_by_another_key() -> Case:
    root = ca()
    impostor = ec.generate_private_key(ec.SECP256R1())
    return [make("front-proxy-client", root, eku=CLIENT_AUTH, signer=impostor)], [root]


def same_name_cas(decoys: int) -> Case:
    """The right CA after ``decoys`` CAs with the same name and other keys (Go tries each one)."""
    real = ca("shared-name", key_ids=False)
    others = [ca("shared-name", key_ids=False) for _ in range(decoys)]
    return [client(real, key_ids=False)], [*others, real]


def issuer_name_other_encoding() -> Case:
    """Same CN, but PrintableString instead of UTF8String: Go compares the raw DER names."""
    root = ca("front-proxy-ca")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "front-proxy-ca", x509.name._ASN1Type.PrintableString)])
    return [make("front-proxy-client", root, eku=CLIENT_AUTH, issuer_name=name)], [root]


def name_constrained_ca_and_san() -> Case:
    constraints = x509.NameConstraints(permitted_subtrees=[x509.DNSName("example.com")], excluded_subtrees=None)
    root = ca(extra=((constraints, True),))
    san = x509.SubjectAlternativeName([x509.DNSName("proxy.example.com")])
    return [client(root, extra=((san, False),))], [root]


def self_signed_client_in_bundle() -> Case:
    leaf = make("front-proxy-client", eku=CLIENT_AUTH)
    return [leaf], [leaf]


def openssl_style() -> Case:
    root = make("ca", ca=True)  # no keyUsage, as `openssl req -x509`
    return [make("front-proxy-client", root)], [root]  # no basicConstraints, no EKU


OK: list[tuple[str, Callable[[], Case], list[str]]] = [
    ("kubeadm CA", lambda: ([xb.kubeadm_client(c := xb.kubeadm_ca())], [c]), ["front-proxy-client", "front-proxy-ca"]),
    ("CA without keyUsage (openssl req -x509)", openssl_style, ["front-proxy-client", "ca"]),
    ("CA with non-critical basicConstraints", lambda: direct(bc_critical=False, ku=None), ["front-proxy-client", "ca"]),
    ("CA with an all-zero keyUsage", lambda: direct(ku=key_usage()), ["front-proxy-client", "ca"]),
    ("leaf without EKU", lambda: leaf_with(eku=None), ["front-proxy-client", "ca"]),
    ("leaf with anyExtendedKeyUsage", lambda: leaf_with(eku=ANY), ["front-proxy-client", "ca"]),
    ("leaf with serverAuth and clientAuth", lambda: leaf_with(eku=SERVER_AUTH + CLIENT_AUTH),
     ["front-proxy-client", "ca"]),
    ("leaf with a handled critical SAN", lambda: leaf_with(
        extra=((x509.SubjectAlternativeName([x509.DNSName("proxy")]), True),)), ["front-proxy-client", "ca"]),
    ("cert-manager root + intermediate", lambda: ([(ch := xb.cert_manager_chain())[2], ch[1]], [ch[0]]),
     ["front-proxy-client", "front-proxy-intermediate", "selfsigned-root"]),
    ("intermediate EKU clientAuth", lambda: via_intermediate(inter_kw={"eku": CLIENT_AUTH}),
     ["front-proxy-client", "intermediate", "root"]),
    ("intermediate EKU any", lambda: via_intermediate(inter_kw={"eku": ANY}),
     ["front-proxy-client", "intermediate", "root"]),
    ("root pathLen 0, no intermediate", lambda: direct(path_length=0), ["front-proxy-client", "ca"]),
    ("root pathLen 1, one intermediate", lambda: via_intermediate(root_kw={"path_length": 1}),
     ["front-proxy-client", "intermediate", "root"]),
    ("self-signed client cert in the bundle", self_signed_client_in_bundle, ["front-proxy-client"]),
    ("right CA after same-name decoys", lambda: same_name_cas(5), ["front-proxy-client", "shared-name"]),
    (f"chain of {MAX_DEPTH}", lambda: long_chain(MAX_DEPTH - 2), ["front-proxy-client"]),
]

REFUSED: list[tuple[str, Callable[[], Case], str]] = [
    ("expired leaf", lambda: leaf_with(not_before=NOW - 3 * DAY, not_after=NOW - DAY),
     "certificate has expired or is not yet valid: current time"),
    ("not yet valid leaf", lambda: leaf_with(not_before=NOW + DAY, not_after=NOW + 3 * DAY), "is before"),
    ("expired root", lambda: direct(not_before=NOW - 3 * DAY, not_after=NOW - DAY), "is after"),
    ("expired intermediate", lambda: via_intermediate(inter_kw={"not_before": NOW - 3 * DAY, "not_after": NOW - DAY}),
     "is after"),
    ("wrong CA", lambda: ([client(ca())], [ca()]), "x509: certificate signed by unknown authority"),
    ("intermediate with CA=false", lambda: via_intermediate(inter_kw={"ca": False, "ku": None}),
     "parent certificate cannot sign this kind of certificate"),
    ("intermediate without basicConstraints", lambda: via_intermediate(inter_kw={"ca": None}),
     "parent certificate cannot sign this kind of certificate"),
    ("root with CA=false", lambda: direct(ca=False), "parent certificate cannot sign"),
    ("v3 root without basicConstraints", lambda: direct(ca=None), "parent certificate cannot sign"),
    ("root keyUsage without certSign", lambda: direct(ku=key_usage(digital_signature=True)),
     "parent certificate cannot sign"),
    ("leaf serverAuth only", lambda: leaf_with(eku=SERVER_AUTH), "certificate specifies an incompatible key usage"),
    ("leaf with an unknown EKU only", lambda: leaf_with(eku=[UNKNOWN_OID]), "incompatible key usage"),
    ("intermediate serverAuth only (EKU nesting)", lambda: via_intermediate(inter_kw={"eku": SERVER_AUTH}),
     "incompatible key usage"),
    ("root serverAuth only (EKU nesting)", lambda: direct(eku=SERVER_AUTH), "incompatible key usage"),
    ("signature mismatch", signed_by_another_key,
     'unknown authority (possibly because of "x509: ECDSA verification failure" while trying to verify '
     'candidate authority certificate "ca")'),
    ("intermediate not sent", lambda: via_intermediate(send_intermediate=False), "unknown authority"),
    ("root pathLen 0 with an intermediate", lambda: via_intermediate(root_kw={"path_length": 0}),
     "too many intermediates for path length constraint"),
    ("chain longer than the bound", lambda: long_chain(MAX_DEPTH - 1), f"chain longer than {MAX_DEPTH}"),
    ("unhandled critical extension on the leaf", lambda: leaf_with(
        extra=((x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00"), True),)), "unhandled critical extension"),
    ("unhandled critical extension on the intermediate", lambda: via_intermediate(
        inter_kw={"extra": ((x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00"), True),)}),
     "unhandled critical extension"),
    ("issuer name in another string encoding", issuer_name_other_encoding, "unknown authority"),
    ("name-constrained CA and a SAN (not evaluated)", name_constrained_ca_and_san,
     "not authorized to sign for this name"),
    ("too many same-name candidates", lambda: same_name_cas(100), "signature check attempts limit reached"),
]


@pytest.mark.parametrize(("build", "subjects"), [pytest.param(b, s, id=i) for i, b, s in OK])
def test_accepted(build: Callable[[], Case], subjects: list[str]) -> None:
    presented, bundle = build()
    chain = verify_chain([c.der for c in presented], CertPool([c.cert for c in bundle]), NOW)
    assert [c.name for c in chain][:len(subjects)] == subjects
    assert chain[0].der == presented[0].der
    assert chain[-1].der in {c.der for c in bundle}


@pytest.mark.parametrize(("build", "error"), [pytest.param(b, e, id=i) for i, b, e in REFUSED])
def test_refused(build: Callable[[], Case], error: str) -> None:
    presented, bundle = build()
    with pytest.raises(ChainRejected) as e:
        verify_chain([c.der for c in presented], CertPool([c.cert for c in bundle]), NOW)
    assert error in str(e.value)


def test_sha1_signature_refused(tmp_path: Path) -> None:
    """cryptography no longer signs with SHA-1; the openssl binary does (Go refuses such chains)."""
    ca_file, crt, _ = xb.openssl_ca(tmp_path, "sha1-ca", digest="sha1")
    leaf = x509.load_pem_x509_certificate(crt.read_bytes())
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA1)
    with pytest.raises(ChainRejected, match="insecure algorithm SHA1"):
        verify_chain([leaf.public_bytes(Encoding.DER)], CertPool(load_pem_bundle(ca_file.read_bytes())))


def test_nothing_to_verify() -> None:
    root = ca()
    with pytest.raises(ChainRejected, match="no client certificate"):
        verify_chain([], CertPool([root.cert]), NOW)
    with pytest.raises(ChainRejected, match="no trusted CA configured"):
        verify_chain([client(root).der], CertPool(), NOW)
    with pytest.raises(ChainRejected, match="malformed certificate"):
        verify_chain([b"\x30\x03\x02\x01\x00"], CertPool([root.cert]), NOW)


def test_malformed_extension() -> None:
    """Go refuses to parse a certificate whose keyUsage does not decode: a bad bundle, a refused leaf."""
    garbled = ((x509.UnrecognizedExtension(x509.oid.ExtensionOID.KEY_USAGE, b"\x01\x02"), True),)
    with pytest.raises(ValueError, match="CA certificate 'CN=bad-ca': x509: malformed certificate"):
        CertPool([make("bad-ca", ca=True, extra=garbled).cert])
    root = ca()
    with pytest.raises(ChainRejected, match="malformed certificate"):
        verify_chain([client(root, extra=garbled).der], CertPool([root.cert]), NOW)


def test_v1_root_without_extensions_is_a_ca(tmp_path: Path) -> None:
    """Go's CheckSignatureFrom asks basicConstraints only of v3 issuers: an old v1 CA still signs."""
    binary = require_binary("openssl", "apt-get install openssl")

    def openssl(*args: str) -> None:
        subprocess.run([binary, *args], check=True, capture_output=True, timeout=60, cwd=tmp_path)

    for name in ("ca", "client"):
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=v1-{name}")
    openssl("x509", "-req", "-in", "ca.csr", "-signkey", "ca.key", "-out", "ca.crt", "-days", "30")
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", "7",
            "-out", "client.crt", "-days", "30")
    root = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    leaf = x509.load_pem_x509_certificate((tmp_path / "client.crt").read_bytes())
    assert root.version == x509.Version.v1 and leaf.version == x509.Version.v1
    chain = verify_chain([leaf.public_bytes(Encoding.DER)], CertPool([root]))
    assert [c.name for c in chain] == ["v1-client", "v1-ca"]
