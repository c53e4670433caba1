"""The control plane's PKI: ECDSA P-256 keys (fast to generate, about 1 ms each, versus RSA's 50+ ms).

One cluster CA signs the apiserver's serving cert, every client cert (admin, controller-manager,
scheduler, the apiserver's client cert towards kubelets) and the test kubelet's serving cert; a second CA
signs the front-proxy client cert, as in a kubeadm cluster.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertPair", "Pki", "issue_kubelet_serving", "make_pki"]

_VALID = dt.timedelta(days=30)


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: CertPair
    apiserver: CertPair
    admin: CertPair
    controller_manager: CertPair
    scheduler: CertPair
    apiserver_kubelet_client: CertPair
    front_proxy_ca: CertPair
    front_proxy_client: CertPair
    sa_key: Path
    sa_pub: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    # ECDSA keys sign (no key encipherment); only a CA signs certificates and CRLs.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _ca(dir: Path, stem: str, cn: str) -> tuple[CertPair, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pair = CertPair(dir / f"{stem}.crt", dir / f"{stem}.key")
    _write_cert(cert, pair.cert)
    _write_key(key, pair.key)
    return pair, cert, key


def _leaf(
    dir: Path,
    stem: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    cn: str,
    *,
    orgs: tuple[str, ...] = (),
    server: bool = False,
    client: bool = False,
    ips: tuple[str, ...] = (),
    dns: tuple[str, ...] = (),
) -> CertPair:
    ca_cert, ca_key = ca
    key = _key()
    now = dt.datetime.now(dt.UTC)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, orgs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    sans += [x509.DNSName(d) for d in dns]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    pair = CertPair(dir / f"{stem}.crt", dir / f"{stem}.key")
    _write_cert(cert, pair.cert)
    _write_key(key, pair.key)
    return pair


def _load_ca(pair: CertPair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{pair.key} is not an ECDSA key")
    return cert, key


def make_pki(dir: Path, service_ip: str = "10.0.0.1") -> Pki:
    dir.mkdir(parents=True, exist_ok=True)
    ca_pair, ca_cert, ca_key = _ca(dir, "ca", "gc-tuner-e2e-ca")
    ca = (ca_cert, ca_key)
    fp_pair, fp_cert, fp_key = _ca(dir, "front-proxy-ca", "gc-tuner-e2e-front-proxy-ca")
    sa = _key()
    sa_key, sa_pub = dir / "sa.key", dir / "sa.pub"
    _write_key(sa, sa_key)
    sa_pub.write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    svc = "kubernetes.default.svc"
    return Pki(
        dir=dir,
        ca=ca_pair,
        apiserver=_leaf(
            dir,
            "apiserver",
            ca,
            "kube-apiserver",
            server=True,
            ips=("127.0.0.1", service_ip),
            dns=("localhost", "kubernetes", "kubernetes.default", svc, f"{svc}.cluster.local"),
        ),
        admin=_leaf(dir, "admin", ca, "kubernetes-admin", orgs=("system:masters",), client=True),
        controller_manager=_leaf(
            dir, "controller-manager", ca, "system:kube-controller-manager", client=True
        ),
        scheduler=_leaf(dir, "scheduler", ca, "system:kube-scheduler", client=True),
        apiserver_kubelet_client=_leaf(
            dir,
            "apiserver-kubelet-client",
            ca,
            "kube-apiserver-kubelet-client",
            orgs=("system:masters",),
            client=True,
        ),
        front_proxy_ca=fp_pair,
        front_proxy_client=_leaf(
            dir, "front-proxy-client", (fp_cert, fp_key), "front-proxy-client", client=True
        ),
        sa_key=sa_key,
        sa_pub=sa_pub,
    )


def issue_kubelet_serving(pki: Pki, node: str, ip: str = "127.0.0.1") -> CertPair:
    """The serving cert of the test kubelet's log endpoint; the apiserver verifies it against the CA."""
    return _leaf(
        pki.dir,
        f"kubelet-{node}",
        _load_ca(pki.ca),
        f"system:node:{node}",
        orgs=("system:nodes", "system:masters"),
        server=True,
        client=True,
        ips=(ip,),
        dns=(node, "localhost"),
    )
