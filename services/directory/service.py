"""The directory's use cases: each change is one transaction with its audit row and outbox event."""

from __future__ import annotations

from services.directory.service_groups import GroupUseCases
from services.directory.service_imports import ImportUseCases
from services.directory.service_persons import PersonUseCases
from services.directory.service_roles import RoleUseCases
from services.directory.service_workspaces import WorkspaceUseCases


class DirectoryService(
    WorkspaceUseCases, PersonUseCases, RoleUseCases, GroupUseCases, ImportUseCases
):
    """All use cases of the directory: one mixin per concept (service_<concept>.py)."""
