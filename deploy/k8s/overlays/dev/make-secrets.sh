#!/usr/bin/env sh
# Makes the dev overlay's secret files (random, URL-safe; kept out of git by .gitignore).
# Run once before `kubectl apply -k deploy/k8s/overlays/dev`; existing files are kept.
# Then install cert-manager in the cluster (the identity component's certificates need it).
set -eu
cd "$(dirname "$0")"
mkdir -p secrets
chmod 700 secrets
for name in auth-secret-key notifications-secret-key db-directory-password db-auth-password db-tickets-password db-compliance-password db-notifications-password; do
  if [ ! -s "secrets/$name" ]; then
    if [ "$name" = auth-secret-key ] || [ "$name" = notifications-secret-key ]; then
      # auth's key for TOTP and SSO secrets, notifications' for its links: 32 random bytes, base64.
      python3 -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode(), end="")' > "secrets/$name"
    else
      python3 -c 'import secrets; print(secrets.token_hex(24), end="")' > "secrets/$name"
    fi
    chmod 600 "secrets/$name"
    echo "made secrets/$name"
  fi
done
# Identity between components: an Ed25519 key per component, their public keys
# (service-keys.json) and a CA for cert-manager's Issuer, made by the same code as ./dev up.
# Needs the project's Python (./dev test or ./dev up installs it); PYTHON overrides it.
if [ ! -s secrets/identity/service-keys.json ]; then
  PY=${PYTHON:-}
  if [ -z "$PY" ]; then
    if [ -x ../../../../.venv/bin/python ]; then PY=../../../../.venv/bin/python; else PY=python3; fi
  fi
  "$PY" -m deploy.identities make secrets
fi
