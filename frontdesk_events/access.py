"""Who may access what, kept from a snapshot and the directory's events (no I/O).

It keeps the structure the directory has (roles and their permissions, groups and their roles,
each person's direct roles and groups), so every event, applied in order, updates it with the
absolute state it carries, and effective permissions are recomputed from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from frontdesk_events.feed import Decoded, Snapshot


@dataclass
class PersonAccess:
    active: bool
    portal_access: bool
    roles: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)


@dataclass
class AccessState:
    persons: dict[str, PersonAccess] = field(default_factory=dict)
    roles: dict[str, frozenset[str]] = field(default_factory=dict)
    groups: dict[str, frozenset[str]] = field(default_factory=dict)

    def load(self, snapshot: Snapshot, *, replace: bool = True) -> None:
        """Take a snapshot's state (all of it, or merge in some persons with replace=False)."""
        if replace:
            self.persons.clear()
        self.roles.update({r.role_id: frozenset(r.permissions) for r in snapshot.roles})
        self.groups.update({g.group_id: frozenset(g.role_ids) for g in snapshot.groups})
        for p in snapshot.persons:
            self.persons[p.person_id] = PersonAccess(
                p.active, p.portal_access, set(p.role_ids), set(p.group_ids)
            )

    def apply(self, event: Decoded) -> list[str]:
        """Apply one directory event; returns the ids of persons to fetch again (an import)."""
        if event.service != "directory":
            return []
        name = event.name
        p: Any = event.payload
        if name in (
            "person_created",
            "person_updated",
            "person_deactivated",
            "person_reactivated",
            "portal_access_changed",
        ):
            known = self.persons.setdefault(p.person_id, PersonAccess(p.active, p.portal_access))
            known.active = p.active
            known.portal_access = p.portal_access
        elif name in ("role_granted", "role_revoked"):
            person = self.persons.get(p.person_id)
            if person is not None:
                (person.roles.add if name == "role_granted" else person.roles.discard)(p.role_id)
        elif name in ("group_member_added", "group_member_removed"):
            person = self.persons.get(p.person_id)
            if person is not None:
                if name == "group_member_added":
                    person.groups.add(p.group_id)
                else:
                    person.groups.discard(p.group_id)
        elif name in ("role_created", "role_permissions_changed"):
            self.roles[p.role_id] = frozenset(p.permissions)
        elif name == "role_deleted":
            self.roles.pop(p.role_id, None)
            for person in self.persons.values():
                person.roles.discard(p.role_id)
            self.groups = {g: r - {p.role_id} for g, r in self.groups.items()}
        elif name in ("group_created", "group_roles_changed"):
            self.groups[p.group_id] = frozenset(p.role_ids)
        elif name == "group_deleted":
            self.groups.pop(p.group_id, None)
            for person in self.persons.values():
                person.groups.discard(p.group_id)
        elif name == "persons_imported":
            return list(p.created_person_ids) + list(p.updated_person_ids)
        return []

    def permissions(self, person_id: str) -> frozenset[str]:
        person = self.persons[person_id]
        granted: set[str] = set()
        for role in person.roles:
            granted |= self.roles.get(role, frozenset())
        for group in person.groups:
            for role in self.groups.get(group, frozenset()):
                granted |= self.roles.get(role, frozenset())
        return frozenset(granted)

    def table(self) -> dict[str, tuple[bool, bool, frozenset[str]]]:
        """person id -> (active, portal access, effective permissions)."""
        return {
            pid: (p.active, p.portal_access, self.permissions(pid))
            for pid, p in self.persons.items()
        }
