"""The events the notifications service publishes: none yet.

DESIGN.md names "notification sent/failed"; until a consumer needs them, the delivery log
(ListDeliveries) is where a sent, failed or refused mail is visible.
"""

from __future__ import annotations

__all__: list[str] = []
