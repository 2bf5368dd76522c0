"""Client-certificate chains verified as Go's ``crypto/x509`` ``Certificate.Verify`` does for k8s.io/apiserver.

k8s.io/apiserver's x509 and requestheader authenticators call ``leaf.Verify`` with the CA bundle as
``Roots``, the rest of the presented chain as ``Intermediates``, the current time and
``KeyUsages: [ClientAuth]``. cryptography's own verifier applies web-PKI (RFC 5280 / CABF) profiles
and refuses CAs Go accepts (no keyUsage, the ``openssl req -x509`` default; non-critical
basicConstraints), so this module builds and checks the chain itself with cryptography primitives:

* chain building as ``buildChains``: issuers found by the raw DER issuer name (``byName``), roots
  before intermediates, candidates ordered by AKI/SKI match, loops cut by subject + public key + SAN,
  at most 100 signature checks; a leaf that is itself in the bundle is a chain of one;
* ``CheckSignatureFrom`` for each link: a v3 issuer needs basicConstraints with CA=true (critical or
  not; a v1 issuer has no extensions and may sign), an issuer with a keyUsage needs keyCertSign
  (keyUsage is otherwise ignored, as in Go), SHA-1 and MD5 signatures are refused;
* ``isValid`` for each certificate, root included: no unhandled critical extension, validity
  period at ``now``, CA=true on intermediates, any pathLenConstraint, and extKeyUsage nesting: a
  certificate that lists EKUs must list clientAuth or anyExtendedKeyUsage (one without EKU allows all).

Stricter than Go, deliberately: a chain is at most ``MAX_DEPTH`` certificates, and a CA carrying
name constraints is refused when they would apply (a SAN on the leaf or the CA) instead of
evaluating them. Error texts are Go's, so logs read like kube-apiserver's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

MAX_DEPTH = 10  # certificates in one chain, leaf and root included
MAX_SIGNATURE_CHECKS = 100  # Go's maxChainSignatureChecks

# extensions Go's parser understands (processExtensions); any other critical one is "unhandled"
_HANDLED = {ExtensionOID.KEY_USAGE, ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.CRL_DISTRIBUTION_POINTS,
            ExtensionOID.AUTHORITY_KEY_IDENTIFIER, ExtensionOID.EXTENDED_KEY_USAGE, ExtensionOID.CERTIFICATE_POLICIES,
            ExtensionOID.POLICY_MAPPINGS, ExtensionOID.POLICY_CONSTRAINTS, ExtensionOID.INHIBIT_ANY_POLICY,
            ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_INFORMATION_ACCESS}
_GO_NAMES = (x509.DNSName, x509.RFC822Name, x509.UniformResourceIdentifier, x509.IPAddress)
_INSECURE = (hashes.SHA1, hashes.MD5)


class ChainRejected(Exception):
    """The presented chain does not verify (the message is Go's error text)."""


class _LimitReached(ChainRejected):
    """Go's errSignatureLimit: ends the whole search."""


def _element(data: bytes, pos: int) -> tuple[int, int, int]:
    """One DER element at ``pos``: (tag, content start, end)."""
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length, pos = int.from_bytes(data[pos:pos + n], "big"), pos + n
    return tag, pos, pos + length


def _raw_names(tbs: bytes) -> tuple[bytes, bytes, bytes]:
    """(issuer, subject, subjectPublicKeyInfo) as the DER bytes Go compares (RawIssuer, RawSubject)."""
    _, pos, end = _element(tbs, 0)
    fields: list[bytes] = []
    while pos < end and len(fields) < 7:
        tag, _, next_pos = _element(tbs, pos)
        if fields or tag != 0xA0:  # the optional [0] version is not counted
            fields.append(tbs[pos:next_pos])
        pos = next_pos
    # serial, signature, issuer, validity, subject, subjectPublicKeyInfo
    return fields[2], fields[4], fields[5]


@dataclass(frozen=True, eq=False)
class Cert:
    """A parsed certificate with what Go's verifier looks at."""

    cert: x509.Certificate
    der: bytes
    raw_issuer: bytes
    raw_subject: bytes
    spki: bytes
    v3: bool
    basic: x509.BasicConstraints | None
    key_usage: x509.KeyUsage | None
    eku: tuple[x509.ObjectIdentifier, ...]
    ski: bytes
    aki: bytes
    san: bytes | None
    has_san_names: bool
    name_constraints: bool
    problem: str  # "" or why Go would refuse it outright (unhandled critical extension, bad encoding)

    @classmethod
    def parse(cls, der: bytes) -> Cert:
        try:
            cert = x509.load_der_x509_certificate(der)
            exts = list(cert.extensions)
            raw_issuer, raw_subject, spki = _raw_names(cert.tbs_certificate_bytes)
        except (ValueError, IndexError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as err:
            raise ChainRejected(f"x509: malformed certificate: {err}") from err
        found = {ext.oid: ext for ext in exts}
        problem = ""
        for ext in exts:
            if ext.critical and ext.oid in (ExtensionOID.SUBJECT_KEY_IDENTIFIER,
                                            ExtensionOID.AUTHORITY_INFORMATION_ACCESS):
                problem = f"x509: {ext.oid._name} incorrectly marked critical"
            elif ext.critical and not _handled(ext):
                problem = problem or "x509: unhandled critical extension"

        def value(oid: x509.ObjectIdentifier) -> object:
            return found[oid].value if oid in found else None

        basic, ku, eku = (value(ExtensionOID.BASIC_CONSTRAINTS), value(ExtensionOID.KEY_USAGE),
                          value(ExtensionOID.EXTENDED_KEY_USAGE))
        ski, aki, san = (value(ExtensionOID.SUBJECT_KEY_IDENTIFIER), value(ExtensionOID.AUTHORITY_KEY_IDENTIFIER),
                         value(ExtensionOID.SUBJECT_ALTERNATIVE_NAME))
        return cls(
            cert, der, raw_issuer, raw_subject, spki, cert.version == x509.Version.v3,
            basic if isinstance(basic, x509.BasicConstraints) else None,
            ku if isinstance(ku, x509.KeyUsage) else None,
            tuple(eku) if isinstance(eku, x509.ExtendedKeyUsage) else (),
            ski.digest if isinstance(ski, x509.SubjectKeyIdentifier) else b"",
            (aki.key_identifier or b"") if isinstance(aki, x509.AuthorityKeyIdentifier) else b"",
            san.public_bytes() if isinstance(san, x509.SubjectAlternativeName) else None,
            isinstance(san, x509.SubjectAlternativeName) and any(isinstance(n, _GO_NAMES) for n in san),
            ExtensionOID.NAME_CONSTRAINTS in found, problem)

    @property
    def name(self) -> str:
        """Go's candidate name in UnknownAuthorityError: the CN, else the first O, else the serial."""
        for oid in (x509.NameOID.COMMON_NAME, x509.NameOID.ORGANIZATION_NAME):
            if attrs := self.cert.subject.get_attributes_for_oid(oid):
                return str(attrs[0].value)
        return f"serial:{self.cert.serial_number}"


def _handled(e: x509.Extension[x509.ExtensionType]) -> bool:
    if e.oid in _HANDLED:
        return True
    if isinstance(e.value, x509.SubjectAlternativeName):  # only when it carries a name Go parses
        return any(isinstance(n, _GO_NAMES) for n in e.value)
    if isinstance(e.value, x509.NameConstraints):  # only DNS, email, URI and IP subtrees
        return all(isinstance(n, _GO_NAMES) for n in (*(e.value.permitted_subtrees or ()),
                                                       *(e.value.excluded_subtrees or ())))
    return False


class CertPool:
    """A CA bundle (Go's ``CertPool``): parsed once, looked up by raw subject."""

    def __init__(self, certs: Sequence[x509.Certificate] = ()) -> None:
        """Raises ValueError for a certificate Go could not parse either (a bad CA bundle)."""
        self._by_name: dict[bytes, list[Cert]] = {}
        self._ders: set[bytes] = set()
        for c in certs:
            try:
                self.add(Cert.parse(c.public_bytes(serialization.Encoding.DER)))
            except ChainRejected as e:
                raise ValueError(f"CA certificate {c.subject.rfc4514_string()!r}: {e}") from e

    def add(self, cert: Cert) -> None:
        if cert.der not in self._ders:
            self._ders.add(cert.der)
            self._by_name.setdefault(cert.raw_subject, []).append(cert)

    def __len__(self) -> int:
        return len(self._ders)

    def subjects(self) -> str:
        """The CAs' subjects, for messages."""
        return "; ".join(c.cert.subject.rfc4514_string() for cs in self._by_name.values() for c in cs) or "none"

    def __contains__(self, cert: Cert) -> bool:
        return cert.der in self._ders

    def parents(self, child: Cert) -> list[Cert]:
        """Go's findPotentialParents: same name; AKI = SKI first, then one of them missing, then the rest."""
        def rank(c: Cert) -> int:
            if c.ski == child.aki:
                return 0
            return 1 if bool(c.ski) != bool(child.aki) else 2
        return sorted(self._by_name.get(child.raw_issuer, ()), key=rank)


def _check_signature_from(child: Cert, parent: Cert) -> str:
    """Go's CheckSignatureFrom: "" when ``parent`` signed ``child`` and may sign certificates."""
    if (parent.v3 and parent.basic is None) or (parent.basic is not None and not parent.basic.ca):
        return "x509: invalid signature: parent certificate cannot sign this kind of certificate"
    if parent.key_usage is not None and not parent.key_usage.key_cert_sign and _any_key_usage(parent.key_usage):
        return "x509: invalid signature: parent certificate cannot sign this kind of certificate"
    try:
        algorithm = child.cert.signature_hash_algorithm
        if isinstance(algorithm, _INSECURE):
            return f"x509: cannot verify signature: insecure algorithm {algorithm.name.upper()}"
        child.cert.verify_directly_issued_by(parent.cert)
    except InvalidSignature:
        key = parent.cert.public_key()
        return ("x509: ECDSA verification failure" if isinstance(key, ec.EllipticCurvePublicKey)
                else "x509: Ed25519 verification failure" if isinstance(key, ed25519.Ed25519PublicKey)
                else "crypto/rsa: verification error")
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return "x509: cannot verify signature: algorithm unimplemented"
    return ""


def _any_key_usage(ku: x509.KeyUsage) -> bool:
    """Go's ``KeyUsage != 0``: some bit is set (an all-zero keyUsage counts as absent)."""
    bits = [ku.digital_signature, ku.content_commitment, ku.key_encipherment, ku.data_encipherment,
            ku.key_agreement, ku.key_cert_sign, ku.crl_sign]
    if ku.key_agreement:
        bits += [ku.encipher_only, ku.decipher_only]
    return any(bits)


def _is_valid(c: Cert, kind: str, chain: list[Cert], now: dt.datetime) -> str:
    """Go's isValid for ``c`` about to be appended to ``chain`` as ``kind`` (leaf, intermediate, root)."""
    if c.problem:
        return c.problem
    if now < c.cert.not_valid_before_utc or now > c.cert.not_valid_after_utc:
        edge, word = ((c.cert.not_valid_before_utc, "before") if now < c.cert.not_valid_before_utc
                      else (c.cert.not_valid_after_utc, "after"))
        return (f"x509: certificate has expired or is not yet valid: current time {now:%Y-%m-%dT%H:%M:%SZ} "
                f"is {word} {edge:%Y-%m-%dT%H:%M:%SZ}")
    if c.eku and not {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(c.eku):
        return "x509: certificate specifies an incompatible key usage"
    if kind != "leaf" and c.name_constraints and (chain[0].has_san_names or c.has_san_names):
        return ("x509: a root or intermediate certificate is not authorized to sign for this name: "
                "name constraints are not evaluated here")
    if kind == "intermediate" and (c.basic is None or not c.basic.ca):
        return "x509: certificate is not authorized to sign other certificates"
    if c.basic is not None and c.basic.path_length is not None and len(chain) - 1 > c.basic.path_length:
        return "x509: too many intermediates for path length constraint"
    return ""


def _already_in_chain(candidate: Cert, chain: list[Cert]) -> bool:
    return any(candidate.raw_subject == c.raw_subject and candidate.spki == c.spki and candidate.san == c.san
               for c in chain)


class _Search:
    def __init__(self, roots: CertPool, intermediates: CertPool, now: dt.datetime) -> None:
        self.roots, self.intermediates, self.now = roots, intermediates, now
        self.checks = 0

    def build(self, chain: list[Cert]) -> list[Cert]:
        """Go's buildChains, stopping at the first chain; raises ChainRejected with Go's error."""
        child, err, hint = chain[-1], "", ("", "")
        for kind, pool in (("root", self.roots), ("intermediate", self.intermediates)):
            for candidate in pool.parents(child):
                if _already_in_chain(candidate, chain):
                    continue
                self.checks += 1
                if self.checks > MAX_SIGNATURE_CHECKS:
                    raise _LimitReached("x509: signature check attempts limit reached while verifying "
                                        "certificate chain")
                if sig_err := _check_signature_from(child, candidate):
                    hint = hint if hint[0] else (sig_err, candidate.name)
                    continue
                if err := _is_valid(candidate, kind, chain, self.now):
                    continue
                if kind == "root":
                    return [*chain, candidate]
                if len(chain) + 1 >= MAX_DEPTH:
                    err = f"x509: chain longer than {MAX_DEPTH} certificates"
                    continue
                try:
                    return self.build([*chain, candidate])
                except _LimitReached:
                    raise
                except ChainRejected as e:
                    err = str(e)
        if err:
            raise ChainRejected(err)
        detail = (f' (possibly because of "{hint[0]}" while trying to verify candidate authority certificate '
                  f'"{hint[1]}")') if hint[0] else ""
        raise ChainRejected(f"x509: certificate signed by unknown authority{detail}")


def verify_chain(chain_der: Sequence[bytes], roots: CertPool, now: dt.datetime | None = None) -> list[Cert]:
    """Verify the presented chain (leaf first) for clientAuth against ``roots``; the chain, leaf to root."""
    if not chain_der:
        raise ChainRejected("no client certificate")
    if not len(roots):
        raise ChainRejected("no trusted CA configured")
    now = now or dt.datetime.now(dt.UTC)
    leaf = Cert.parse(chain_der[0])
    intermediates = CertPool()
    for der in chain_der[1:]:
        intermediates.add(Cert.parse(der))
    if err := _is_valid(leaf, "leaf", [], now):
        raise ChainRejected(err)
    if leaf in roots:
        return [leaf]
    return _Search(roots, intermediates, now).build([leaf])


def certificate_identifier(cert: x509.Certificate) -> str:
    """k8s.io/apiserver's certificateIdentifier, plus subject and issuer for the operator."""
    return (f"SN={cert.serial_number}, subject={cert.subject.rfc4514_string()!r}, "
            f"issuer={cert.issuer.rfc4514_string()!r}")


def load_pem_bundle(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem) if pem.strip() else []


def verify_client_chain(chain_pems: Sequence[str], roots: CertPool, now: dt.datetime | None = None) -> Cert:
    """The ASGI TLS extension's ``client_cert_chain`` verified against ``roots``; the leaf.

    Raises ``ChainRejected`` worded as k8s.io/apiserver: ``verifying certificate <id> failed: <Go error>``.
    """
    try:
        ders = [x509.load_pem_x509_certificate(p.encode("ascii")).public_bytes(serialization.Encoding.DER)
                for p in chain_pems]
    except ValueError as e:
        raise ChainRejected(f"x509: malformed certificate: {e}") from e
    try:
        return verify_chain(ders, roots, now)[0]
    except ChainRejected as e:
        ident = certificate_identifier(x509.load_der_x509_certificate(ders[0])) if ders else "(none)"
        raise ChainRejected(f"verifying certificate {ident} failed: {e}") from e


def common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def organizations(cert: x509.Certificate) -> tuple[str, ...]:
    return tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME))
