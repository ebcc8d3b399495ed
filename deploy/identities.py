"""The launcher's identities: an Ed25519 key per component and a local CA with their certificates.

Made on first run under the data folder and kept with the data:

    <data>/identity/<component>.pem      private key (0600) -> FRONTDESK_IDENTITY_KEY_FILE
    <data>/identity/service-keys.json    every component's public key -> auth's
                                         FRONTDESK_SERVICE_KEYS_FILE (auth publishes them)
    <data>/tls/ca.crt, ca.key            the local certificate authority
    <data>/tls/<component>.crt, .key     its certificate (server and client) -> FRONTDESK_TLS_*

In Kubernetes the same files come from Secrets (deploy/README.md): each pod mounts its own key
and a cert-manager certificate; auth mounts the public keys of all components.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from services.chassis import tls
from services.chassis.principals import generate_key, load_private_key, private_pem, public_jwk
from services.chassis.settings import IdentitySettings, TlsSettings

COMPONENTS = (
    "directory",
    "auth",
    "tickets",
    "compliance",
    "notifications",
    "gateway",
    "launcher",
)


class Identities:
    def __init__(self, data_dir: Path, components: tuple[str, ...] = COMPONENTS) -> None:
        self.keys_dir = data_dir / "identity"
        self.tls_dir = data_dir / "tls"
        self.components = components

    def ensure(self) -> None:
        """Make what is missing (keys, CA, certificates); rewrite the public key list."""
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        self.keys_dir.chmod(0o700)
        entries = []
        for name in self.components:
            path = self.key_file(name)
            if not path.exists():
                path.write_bytes(private_pem(generate_key()))
                path.chmod(0o600)
            key = load_private_key(path.read_bytes())
            entries.append({"issuer": name, "jwk": public_jwk(key)})
        self.service_keys.write_text(json.dumps({"keys": entries}, indent=2))
        ca = tls.ensure_ca(self.tls_dir)
        for name in self.components:
            tls.issue(self.tls_dir, name, ca)

    def key_file(self, component: str) -> Path:
        return self.keys_dir / f"{component}.pem"

    @property
    def service_keys(self) -> Path:
        return self.keys_dir / "service-keys.json"

    def tls_settings(self, component: str) -> TlsSettings:
        return TlsSettings(
            ca_file=str(self.tls_dir / "ca.crt"),
            cert_file=str(self.tls_dir / f"{component}.crt"),
            key_file=str(self.tls_dir / f"{component}.key"),
        )

    def env(self, component: str) -> dict[str, str]:
        """The FRONTDESK_* variables that give `component` its identity and TLS."""
        return {
            "FRONTDESK_IDENTITY_KEY_FILE": str(self.key_file(component)),
            "FRONTDESK_SERVICE_KEYS_FILE": str(self.service_keys),
            **tls.env_for(self.tls_settings(component)),
        }

    def merged_env(
        self, component_env: Mapping[str, Mapping[str, str | None]]
    ) -> dict[str, dict[str, str | None]]:
        """`component_env` (per component overrides, as the replicas take them) with each
        component's identity variables added."""
        return {
            name: {**component_env.get(name, {}), **self.env(name)}
            for name in {*component_env, *self.components}
        }

    def settings(self, component: str, auth_addr: str = "") -> IdentitySettings:
        return IdentitySettings(
            key_pem=self.key_file(component).read_text(),
            auth_addr=auth_addr,
            tls=self.tls_settings(component),
        )


def main(argv: list[str] | None = None) -> int:
    """`python -m deploy.identities make DIR`: the same keys, CA and certificates as ./dev up,
    for a deployment that does not use the launcher (deploy/k8s/components/identity/)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m deploy.identities")
    parser.add_argument("action", choices=["make"])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    identities = Identities(args.folder)
    identities.ensure()
    print(f"keys in {identities.keys_dir}, certificates in {identities.tls_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
