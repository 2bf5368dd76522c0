"""``accel-adapter certs``: make a CA and a serving certificate for the adapter's Service.

The aggregator connects to ``https://<svc>.<ns>.svc`` and verifies the serving certificate
against the APIService ``caBundle``, so the certificate carries that name (and the short and
fully qualified forms). Writes ``ca.crt``, ``tls.crt`` and ``tls.key`` to ``--out-dir`` and
prints the base64 caBundle plus the kubectl commands that create the Secret and patch the
APIServices. The CA key is not written: nothing else is ever signed with it.

Rotating to a new CA: ``--previous-ca`` (the ca.crt in use now) puts that CA into the printed
caBundle after the new one, so the aggregator trusts pods still serving the old certificate and
pods serving the new one. Patch the APIServices first, then replace the Secret; once every pod
serves the new certificate, patch them again with the new ca.crt alone.
"""

from __future__ import annotations

import argparse
import base64
import re
import shlex
import sys
from pathlib import Path
from typing import TextIO

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from adapter.certs import KeyPair, create_ca, issue, service_dns_names

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
APISERVICES = (
    "v1beta1.custom.metrics.k8s.io",
    "v1beta2.custom.metrics.k8s.io",
    "v1beta1.external.metrics.k8s.io",
    "v1alpha1.explain.accel-metrics.io",
)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "certs",
        help="create a CA and a serving certificate for the adapter's Service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a = p.add_argument
    a("--service", default="accel-metrics-adapter", help="Service name (default %(default)s)")
    a("--namespace", default="accel-metrics", help="Service namespace (default %(default)s)")
    a("--out-dir", default="certs/out", help="where ca.crt, tls.crt, tls.key go (default %(default)s)")
    a("--days", type=int, default=365, help="serving certificate validity (default %(default)s)")
    a("--ca-days", type=int, default=3650, help="CA validity (default %(default)s)")
    a("--secret-name", default=None, help="Secret name in the printed commands (default <service>-tls)")
    a("--force", action="store_true", help="overwrite existing files in --out-dir")
    a("--previous-ca", default=None,
      help="CA file in use now (e.g. the old ca.crt): the printed caBundle trusts it too, for a rotation")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> str | None:
    for flag, value in (("--service", args.service), ("--namespace", args.namespace)):
        if not _DNS_LABEL.match(value):
            return f"{flag}: {value!r} is not a DNS-1123 label (lower case letters, digits, '-')"
    if args.days < 1:
        return f"--days: must be at least 1, got {args.days}"
    ca_days = getattr(args, "ca_days", 3650)
    if ca_days < args.days:
        return f"--ca-days: must be at least --days ({ca_days} < {args.days})"
    return None


def read_previous_ca(path: str) -> bytes:
    """The CA certificates in ``path`` as PEM; ValueError naming the problem."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"--previous-ca: cannot read {path}: {e.strerror or e}") from e
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise ValueError(f"--previous-ca: {path} is not a PEM certificate file") from e
    for c in certs:
        try:
            is_ca = c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise ValueError(f"--previous-ca: {path}: {c.subject.rfc4514_string()} is not a CA certificate")
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def make_pair(service: str, namespace: str, days: int, ca_days: int = 3650) -> tuple[KeyPair, KeyPair]:
    """A fresh CA and a serving certificate (tls.crt is leaf + CA) for the Service DNS names."""
    names = service_dns_names(service, namespace)
    ca = create_ca(f"{service}.{namespace} CA", days=ca_days)
    leaf = issue(ca, f"{service}.{namespace}.svc", dns_names=names, server=True, days=days)
    return ca, leaf


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    problem = _check(args)
    if problem:
        print(f"accel-adapter certs: {problem}", file=err)
        return 2
    out_dir = Path(args.out_dir)
    files = {name: out_dir / name for name in ("ca.crt", "tls.crt", "tls.key")}
    existing = [str(p) for p in files.values() if p.exists()]
    if existing and not getattr(args, "force", False):
        print(f"accel-adapter certs: refusing to overwrite {', '.join(existing)} (use --force)", file=err)
        return 1
    previous = b""
    if getattr(args, "previous_ca", None):
        try:  # read before writing: the previous CA may be the ca.crt about to be overwritten
            previous = read_previous_ca(args.previous_ca)
        except ValueError as e:
            print(f"accel-adapter certs: {e}", file=err)
            return 2
    ca, leaf = make_pair(args.service, args.namespace, args.days, getattr(args, "ca_days", 3650))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        files["ca.crt"].write_bytes(ca.cert_pem)
        KeyPair(leaf.cert_pem + ca.cert_pem, leaf.key_pem).write(files["tls.crt"], files["tls.key"])
    except OSError as e:
        print(f"accel-adapter certs: cannot write to {out_dir}: {e}", file=err)
        return 1
    ca_bundle = base64.b64encode(ca.cert_pem + previous).decode("ascii")
    secret = getattr(args, "secret_name", None) or f"{args.service}-tls"
    q = shlex.quote
    names = ", ".join(service_dns_names(args.service, args.namespace))
    patch = '"{\\"spec\\":{\\"caBundle\\":\\"${CA_BUNDLE}\\",\\"insecureSkipTLSVerify\\":false}}"'
    lines = [
        f"# wrote {files['ca.crt']}, {files['tls.crt']}, {files['tls.key']} (SANs: {names})",
        ("# caBundle for the APIServices: the new ca.crt, then the previous CA. Patch the APIServices "
         "first, then replace the Secret; once every pod serves the new certificate, patch again with "
         "ca.crt alone." if previous else "# caBundle (base64 PEM of ca.crt) for the APIServices:"),
        ca_bundle,
        "",
        "# create the serving Secret the Deployment mounts:",
        f"kubectl -n {q(args.namespace)} create secret generic {q(secret)} "
        f"--from-file=tls.crt={q(str(files['tls.crt']))} --from-file=tls.key={q(str(files['tls.key']))} "
        f"--from-file=ca.crt={q(str(files['ca.crt']))} --dry-run=client -o yaml | kubectl apply -f -",
        "",
        "# put the CA into the APIServices (after applying apiservice/ or installing the chart):",
        f"CA_BUNDLE={ca_bundle}",
        *(f"kubectl patch apiservice {name} --type=merge -p {patch}" for name in APISERVICES),
        "",
        "# or with Helm: --set tls.mode=existingSecret "
        f"--set tls.existingSecret.name={secret} --set tls.existingSecret.caBundle=\"$CA_BUNDLE\"",
    ]
    print("\n".join(lines), file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``certs`` on its own (``python -m adapter.certs_cli``), before it is wired into the CLI."""
    parser = argparse.ArgumentParser(prog="accel-adapter")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["certs", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
