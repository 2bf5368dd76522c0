"""``accel-adapter certs``: a CA and a serving certificate the aggregator accepts."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import io
import os
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from adapter import certs_cli
from adapter.certs import KeyPair
from tests.support.servingtls import handshake, serving

ROOT = Path(__file__).resolve().parents[1]


def _ns(out_dir: Path, **kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"service": "accel-metrics-adapter", "namespace": "accel-metrics",
                               "out_dir": str(out_dir), "days": 365}
    base.update(kw)
    return argparse.Namespace(**base)


def _run(args: argparse.Namespace) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = certs_cli.run(args, out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def _verify_chain(ca_pem: bytes, leaf_pem: bytes, dns_name: str) -> None:
    """Verify like a TLS client does: chain to the CA, server usage, hostname in the SANs."""
    ca = x509.load_pem_x509_certificate(ca_pem)
    chain = x509.load_pem_x509_certificates(leaf_pem)
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName(dns_name))
    verifier.verify(chain[0], chain[1:])


def test_run_writes_a_verifying_pair_with_the_service_sans(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    rc, out, err = _run(_ns(out_dir, service="metrics", namespace="team-a", days=30))
    assert rc == 0, err
    ca_pem = (out_dir / "ca.crt").read_bytes()
    tls_pem = (out_dir / "tls.crt").read_bytes()
    key_pem = (out_dir / "tls.key").read_bytes()
    assert stat.S_IMODE(os.stat(out_dir / "tls.key").st_mode) == 0o600

    leaf, *rest = x509.load_pem_x509_certificates(tls_pem)
    assert [c.subject for c in rest] == [x509.load_pem_x509_certificate(ca_pem).subject]  # leaf + CA
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [
        "metrics", "metrics.team-a", "metrics.team-a.svc", "metrics.team-a.svc.cluster.local"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    lifetime = leaf.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=29) < lifetime <= dt.timedelta(days=30)
    # the key belongs to the certificate
    key = load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]
    # the aggregator dials <svc>.<ns>.svc; in-cluster clients may use the other forms
    for name in ("metrics.team-a.svc", "metrics", "metrics.team-a.svc.cluster.local"):
        _verify_chain(ca_pem, tls_pem, name)
    with pytest.raises(VerificationError):
        _verify_chain(ca_pem, tls_pem, "metrics.other.svc")

    # printed: the caBundle (base64 of ca.crt), the Secret command, the APIService patches
    lines = out.splitlines()
    bundle = base64.b64encode(ca_pem).decode()
    assert bundle in lines
    assert f"CA_BUNDLE={bundle}" in lines
    assert base64.b64decode(bundle) == ca_pem
    secret_cmd = next(line for line in lines if "create secret" in line)
    assert "kubectl -n team-a create secret generic metrics-tls" in secret_cmd
    assert f"tls.crt={out_dir / 'tls.crt'}" in secret_cmd and f"tls.key={out_dir / 'tls.key'}" in secret_cmd
    for api in certs_cli.APISERVICES:
        assert any(line.startswith(f"kubectl patch apiservice {api} ") for line in lines)
    assert not list(out_dir.glob("*ca.key*")), "the CA key is never written"


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert _run(_ns(tmp_path))[0] == 0
    before = (tmp_path / "tls.crt").read_bytes()
    rc, _, err = _run(_ns(tmp_path))
    assert rc == 1 and "--force" in err
    assert (tmp_path / "tls.crt").read_bytes() == before
    assert _run(_ns(tmp_path, force=True))[0] == 0
    assert (tmp_path / "tls.crt").read_bytes() != before


@pytest.mark.parametrize(("kw", "message"), [
    ({"service": "Bad_Name"}, "--service"),
    ({"namespace": "a.b"}, "--namespace"),
    ({"days": 0}, "--days"),
    ({"days": 400, "ca_days": 100}, "--ca-days"),
])
def test_bad_arguments_exit_2_and_write_nothing(tmp_path: Path, kw: dict[str, object], message: str) -> None:
    rc, out, err = _run(_ns(tmp_path / "o", **kw))
    assert rc == 2
    assert message in err and out == ""
    assert not (tmp_path / "o").exists()


def test_rotation_bundle_trusts_the_old_and_the_new_serving_certificate(tmp_path: Path) -> None:
    """--previous-ca: the printed caBundle carries the new and the old CA, so the aggregator accepts
    a pod on either side of the Secret swap (real TLS, the server's certificate reloader)."""
    out_dir = tmp_path / "out"
    assert _run(_ns(out_dir))[0] == 0
    old = {name: (out_dir / name).read_bytes() for name in ("ca.crt", "tls.crt", "tls.key")}
    # the old ca.crt is read before --force overwrites it
    rc, out, err = _run(_ns(out_dir, force=True, previous_ca=str(out_dir / "ca.crt")))
    assert rc == 0, err
    new = {name: (out_dir / name).read_bytes() for name in ("ca.crt", "tls.crt", "tls.key")}
    assert new["ca.crt"] != old["ca.crt"]
    bundle = base64.b64decode(next(line for line in out.splitlines() if line.startswith("CA_BUNDLE="))
                              .removeprefix("CA_BUNDLE="))
    assert bundle == new["ca.crt"] + old["ca.crt"]
    assert "patch again with ca.crt alone" in out

    name = "accel-metrics-adapter.accel-metrics.svc"
    leaf = {k: x509.load_pem_x509_certificates(v["tls.crt"])[0].public_bytes(Encoding.PEM)
            for k, v in (("old", old), ("new", new))}
    with serving(tmp_path / "pod", KeyPair(old["tls.crt"], old["tls.key"])) as pod:
        assert handshake(pod.port, bundle, name) == leaf["old"]
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(pod.port, new["ca.crt"], name)
        KeyPair(new["tls.crt"], new["tls.key"]).write(pod.cert, pod.key)
        assert pod.reloader.check_now() is True
        assert handshake(pod.port, bundle, name) == leaf["new"]
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(pod.port, old["ca.crt"], name)


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read"),
    (b"not a certificate\n", "is not a PEM certificate file"),
    ("leaf", "is not a CA certificate"),
])
def test_previous_ca_must_be_ca_certificates(tmp_path: Path, content: bytes | str | None, message: str) -> None:
    src = tmp_path / "src"
    assert _run(_ns(src))[0] == 0
    previous = tmp_path / "previous.crt"
    if content == "leaf":
        previous.write_bytes((src / "tls.crt").read_bytes())  # leaf + CA: the leaf is refused
    elif isinstance(content, bytes):
        previous.write_bytes(content)
    rc, out, err = _run(_ns(tmp_path / "o", previous_ca=str(previous)))
    assert rc == 2 and out == ""
    assert "--previous-ca" in err and message in err, err
    assert not (tmp_path / "o").exists()


def test_register_adds_the_subcommand_with_its_flags(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="accel-adapter")
    certs_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["certs", "--service", "s", "--namespace", "n", "--out-dir", str(tmp_path),
                              "--days", "10"])
    assert (args.service, args.namespace, args.out_dir, args.days) == ("s", "n", str(tmp_path), 10)
    assert args.func is certs_cli.run
    assert args.func(args, out=io.StringIO(), err=io.StringIO()) == 0
    assert (tmp_path / "tls.crt").is_file()


def test_through_python_c_and_the_shell_script(tmp_path: Path) -> None:
    code = ("import argparse, sys; from adapter import certs_cli; "
            "p = argparse.ArgumentParser(prog='accel-adapter'); certs_cli.register(p.add_subparsers()); "
            "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code, "certs", "--out-dir", str(tmp_path / "py"),
                        "--service", "svc", "--namespace", "ns"],
                       capture_output=True, text=True, timeout=60, env=env, check=False)
    assert r.returncode == 0, r.stderr
    ca_pem = (tmp_path / "py" / "ca.crt").read_bytes()
    assert base64.b64encode(ca_pem).decode() in r.stdout.splitlines()
    _verify_chain(ca_pem, (tmp_path / "py" / "tls.crt").read_bytes(), "svc.ns.svc")

    r = subprocess.run(["bash", str(ROOT / "certs" / "generate.sh"), "--out-dir", str(tmp_path / "sh"),
                        "--namespace", "ns2"], capture_output=True, text=True, timeout=60, env=env,
                       cwd=tmp_path, check=False)
    assert r.returncode == 0, r.stderr
    _verify_chain((tmp_path / "sh" / "ca.crt").read_bytes(), (tmp_path / "sh" / "tls.crt").read_bytes(),
                  "accel-metrics-adapter.ns2.svc")

    bad = subprocess.run([sys.executable, "-c", code, "certs", "--out-dir", str(tmp_path / "bad"),
                          "--days", "0"], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert bad.returncode == 2 and "--days" in bad.stderr
