"""Use cases of the compliance service: each change and its events commit in one transaction.

Every use case takes the Caller, scopes all reads and writes to its workspace and checks the
caller's right to the item (NOT_FOUND when they may not see it, whatever the id)."""

from __future__ import annotations

import logging

from services.compliance.service_controls import ControlUseCases
from services.compliance.service_issues import IssueUseCases
from services.compliance.service_sweep import SweepUseCases
from services.compliance.service_tests import ControlTestUseCases


class ComplianceService(ControlUseCases, ControlTestUseCases, SweepUseCases, IssueUseCases):
    """All use cases of compliance: one mixin per concept (service_<concept>.py)."""


log = logging.getLogger(__name__)
