"""SCIM 2.0 provisioning at /scim/v2/ on each workspace host (api), and its tokens in the
console (console)."""
