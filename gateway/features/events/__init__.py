"""What internal services need to follow Frontdesk's events: the AsyncAPI catalogue
(catalogue) and the access snapshot to start from (snapshot)."""
