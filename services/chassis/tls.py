"""Mutual TLS between components: credentials from files, and a local CA for the launcher.

Each component has a certificate and key signed by one CA; servers require a client
certificate from that CA, clients check the server's against it. Settings:
FRONTDESK_TLS_CA_FILE, FRONTDESK_TLS_CERT_FILE, FRONTDESK_TLS_KEY_FILE (all three, or none;
Kubernetes mounts them from a cert-manager Secret: ca.crt, tls.crt, tls.key). Without them
the component talks plain text and says so loudly at start (tests only).
FRONTDESK_HEALTH_LISTEN adds a plain-text port with nothing but the health service, for
probes that cannot present a certificate (the kubelet's gRPC probe).
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
from collections.abc import Sequence
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health, health_pb2_grpc

from services.chassis.settings import TlsSettings

log = logging.getLogger(__name__)


def warn_if_plaintext(component: str, settings: TlsSettings) -> None:
    if not settings.enabled:
        log.warning(
            "!!! %s talks to other components in PLAIN TEXT, without mutual TLS: anyone on the "
            "network can read and inject calls. Set FRONTDESK_TLS_CA_FILE, FRONTDESK_TLS_CERT_FILE "
            "and FRONTDESK_TLS_KEY_FILE (./dev up does). Plain text is for tests only. !!!",
            component,
        )


def server_credentials(settings: TlsSettings) -> grpc.ServerCredentials | None:
    """Server credentials that require a client certificate from the CA; None for plain text."""
    if not settings.enabled:
        return None
    ca, cert, key = settings.read()
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )


def channel_credentials(settings: TlsSettings) -> grpc.ChannelCredentials | None:
    """Client credentials presenting this component's certificate; None for plain text."""
    if not settings.enabled:
        return None
    ca, cert, key = settings.read()
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


async def start_plain_health(
    listen: str, servicer: health.aio.HealthServicer
) -> grpc.aio.Server | None:
    """A second, plain-text server with only the health service (the same servicer, so it
    answers what the TLS port's health answers), for probes without a client certificate.
    Nothing else is served there."""
    if not listen:
        return None
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if server.add_insecure_port(listen) == 0:
        raise RuntimeError(f"cannot listen on {listen} for the health port")
    await server.start()
    return server


# -- a local certificate authority (the launcher's) ----------------------------------------


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def ensure_ca(folder: Path, days: int = 3650) -> tuple[Path, Path]:
    """The CA certificate and key under `folder` (made on first use); (cert path, key path)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "ca.crt", folder / "ca.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Frontdesk local CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def issue(
    folder: Path,
    component: str,
    ca: tuple[Path, Path],
    hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    days: int = 825,
) -> TlsSettings:
    """A certificate for `component` (server and client use) signed by the CA, made once."""
    cert_path, key_path = folder / f"{component}.crt", folder / f"{component}.key"
    if not (cert_path.exists() and key_path.exists()):
        ca_cert = x509.load_pem_x509_certificate(ca[0].read_bytes())
        ca_key = serialization.load_pem_private_key(ca[1].read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName(component)]
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, component)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_key(key_path, key)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TlsSettings(ca_file=str(ca[0]), cert_file=str(cert_path), key_file=str(key_path))


def env_for(settings: TlsSettings) -> dict[str, str]:
    """The FRONTDESK_TLS_* variables naming these files."""
    return {
        "FRONTDESK_TLS_CA_FILE": settings.ca_file,
        "FRONTDESK_TLS_CERT_FILE": settings.cert_file,
        "FRONTDESK_TLS_KEY_FILE": settings.key_file,
    }
