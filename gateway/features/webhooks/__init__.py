"""Webhooks in the management console (Settings:manage): endpoints and their delivery log."""
