"""Certificates shaped the ways real clusters make them, for the client-certificate tests.

``make`` builds any certificate (every extension optional, so tests can leave out what real CAs
leave out); ``kubeadm_ca``, ``openssl_ca`` (the real ``openssl`` binary) and ``cert_manager_chain``
make front-proxy CAs as kubeadm, ``openssl req -x509`` and cert-manager do.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.procs import require_binary

CLIENT_AUTH = [ExtendedKeyUsageOID.CLIENT_AUTH]
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def write(self, directory: Path, name: str, chain: tuple[Issued, ...] = ()) -> tuple[Path, Path]:
        """``name.crt`` (this certificate, then ``chain``) and ``name.key``."""
        directory.mkdir(parents=True, exist_ok=True)
        crt, key = directory / f"{name}.crt", directory / f"{name}.key"
        crt.write_bytes(self.pem + b"".join(c.pem for c in chain))
        key.write_bytes(self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return crt, key


def key_usage(*, cert_sign: bool = False, digital_signature: bool = False,
              key_encipherment: bool = False, crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False,
                         key_encipherment=key_encipherment, data_encipherment=False, key_agreement=False,
                         key_cert_sign=cert_sign, crl_sign=crl_sign, encipher_only=False, decipher_only=False)


def make(cn: str, issuer: Issued | None = None, *, ca: bool | None = None, bc_critical: bool = True,
         path_length: int | None = None, ku: x509.KeyUsage | None = None,
         eku: list[x509.ObjectIdentifier] | None = None,
         not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
         extra: tuple[tuple[x509.ExtensionType, bool], ...] = (), orgs: tuple[str, ...] = (),
         key: ec.EllipticCurvePrivateKey | None = None, signer: ec.EllipticCurvePrivateKey | None = None,
         hash_algorithm: hashes.HashAlgorithm | None = None, key_ids: bool = True,
         issuer_name: x509.Name | None = None) -> Issued:
    """A certificate; self-signed without ``issuer``. ``ca=None`` means no basicConstraints at all."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs),
                         x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer_name or (issuer.cert.subject if issuer else subject))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(not_before or NOW - dt.timedelta(hours=1))
         .not_valid_after(not_after or NOW + dt.timedelta(days=30)))
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), bc_critical)
    if ku is not None:
        b = b.add_extension(ku, critical=True)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if key_ids:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        if issuer is not None:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False)
    for ext, critical in extra:
        b = b.add_extension(ext, critical)
    return Issued(b.sign(signer or (issuer.key if issuer else key), hash_algorithm or hashes.SHA256()), key)


def kubeadm_ca(cn: str = "front-proxy-ca") -> Issued:
    """As kubeadm's pkiutil.NewSelfSignedCACert: keyUsage certSign+digitalSignature+keyEncipherment
    critical, basicConstraints CA critical."""
    return make(cn, ca=True, ku=key_usage(cert_sign=True, digital_signature=True, key_encipherment=True))


def kubeadm_client(ca: Issued, cn: str = "front-proxy-client") -> Issued:
    return make(cn, ca, ca=False, ku=key_usage(digital_signature=True, key_encipherment=True), eku=CLIENT_AUTH)


def cert_manager_chain(cn: str = "front-proxy-client") -> tuple[Issued, Issued, Issued]:
    """(root, intermediate, leaf): a self-signed root ClusterIssuer whose CA Certificate (isCA, no
    pathLen) issues an intermediate CA that signs the client (keyUsage + EKU clientAuth, as
    cert-manager's defaults)."""
    ku_ca = key_usage(cert_sign=True, digital_signature=True, key_encipherment=True)
    root = make("selfsigned-root", ca=True, ku=ku_ca)
    intermediate = make("front-proxy-intermediate", root, ca=True, ku=ku_ca)
    leaf = make(cn, intermediate, ku=key_usage(digital_signature=True, key_encipherment=True), eku=CLIENT_AUTH)
    return root, intermediate, leaf


def openssl_ca(directory: Path, cn: str, client_cn: str = "front-proxy-client",
               ca_extensions: str | None = None, digest: str = "sha256", key: str = "ec") -> tuple[Path, Path, Path]:
    """(ca.crt, client.crt, client.key) made by the ``openssl`` binary: ``req -x509`` with the system
    defaults (no keyUsage; ``ca_extensions`` replaces the extension section) and ``x509 -req`` for the
    client (a v1 certificate: no extension, so no EKU), signed with ``digest``; ``key`` "ec" (P-256)
    or "rsa" (2048 bits)."""
    openssl = require_binary("openssl", "apt-get install openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    newkey = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"] if key == "ec"
              else ["-newkey", "rsa:2048", "-nodes"])
    key_file, csr, crt = directory / "client.key", directory / "client.csr", directory / "client.crt"
    extra: list[str] = []
    if ca_extensions is not None:
        conf = directory / "ca.cnf"
        conf.write_text(f"[req]\ndistinguished_name = dn\nx509_extensions = ext\n[dn]\n[ext]\n{ca_extensions}\n")
        extra = ["-config", str(conf)]
    run = [openssl, "req", "-x509", *newkey, "-keyout", str(ca_key), "-out", str(ca_crt), "-subj", f"/CN={cn}",
           "-days", "30", *extra]
    subprocess.run(run, check=True, capture_output=True, timeout=60)
    subprocess.run([openssl, "req", "-new", *newkey, "-keyout", str(key_file), "-out", str(csr),
                    "-subj", f"/CN={client_cn}"], check=True, capture_output=True, timeout=60)
    subprocess.run([openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
                    "-set_serial", "4242", "-out", str(crt), "-days", "30", f"-{digest}"],
                   check=True, capture_output=True, timeout=60)
    return ca_crt, crt, key_file
