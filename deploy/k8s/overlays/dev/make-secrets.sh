#!/usr/bin/env sh
# Makes the dev overlay's secret files (random, URL-safe; kept out of git by .gitignore).
# Run once before `kubectl apply -k deploy/k8s/overlays/dev`; existing files are kept.
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
