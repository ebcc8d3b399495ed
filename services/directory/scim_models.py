"""The SCIM 2.0 resources the directory serves, described with scim2-models (no I/O).

User carries the Enterprise User extension and Frontdesk's own extension (portalAccess); Group
is the core Group. The discovery documents (/ServiceProviderConfig, /ResourceTypes, /Schemas)
are built from the same models, so what we publish is what we validate against.
"""

from __future__ import annotations

from typing import Annotated, Any

from scim2_models import (
    URN,
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    EnterpriseUser,
    ETag,
    Extension,
    Filter,
    Group,
    GroupMember,
    Meta,
    Mutability,
    Patch,
    ResourceType,
    ScimPolicy,
    ServiceProviderConfig,
    Sort,
    User,
)

FRONTDESK_USER_URN = "urn:frontdesk:params:scim:schemas:extension:frontdesk:2.0:User"
ENTERPRISE_USER_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
MAX_RESULTS = 1000
DEFAULT_COUNT = 100


class FrontdeskUser(Extension):
    """Frontdesk's attributes of a provisioned person."""

    __schema__ = URN(FRONTDESK_USER_URN)

    portal_access: bool | None = None
    """Whether the person may sign in to the portal. Unset on creation: the workspace's
    portal-access default, refined by its e-mail domain rules."""


class Member(GroupMember):
    """A member of a group; its display name is the person's, as the directory holds it."""

    display: Annotated[str | None, Mutability.read_only] = None


class ScimGroup(Group):
    """The core Group; members are users (no nested groups)."""

    members: list[Member] | None = None  # type: ignore[assignment]


ScimUser = User[EnterpriseUser | FrontdeskUser]

# What we tolerate from identity providers: Microsoft Entra ID sends `remove` with a value
# naming the member to remove, and `add`/`replace` on a filtered path that matches nothing yet
# (emails[type eq "work"].value on a user without a work address).
POLICY = ScimPolicy(
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)

MODELS: dict[str, Any] = {"User": ScimUser, "Group": ScimGroup}
ENDPOINTS = {"User": "Users", "Group": "Groups"}


def service_provider_config(base_url: str) -> dict[str, Any]:
    config = ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="Bearer token",
                description="A workspace SCIM token, created in the management console"
                " (Settings > SCIM provisioning) and sent as Authorization: Bearer <token>.",
                primary=True,
            )
        ],
        meta=Meta(
            resource_type="ServiceProviderConfig",
            location=f"{base_url}/ServiceProviderConfig",
        ),
    )
    dumped: dict[str, Any] = config.model_dump()
    return dumped


def resource_types(base_url: str) -> list[dict[str, Any]]:
    user = ResourceType.model_validate(
        {
            "id": "User",
            "name": "User",
            "description": "A person of the workspace",
            "endpoint": "/Users",
            "schema": USER_URN,
            "schemaExtensions": [
                {"schema": ENTERPRISE_USER_URN, "required": False},
                {"schema": FRONTDESK_USER_URN, "required": False},
            ],
            "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/User"},
        }
    )
    group = ResourceType.model_validate(
        {
            "id": "Group",
            "name": "Group",
            "description": "A group of the workspace; its roles give its members their permissions",
            "endpoint": "/Groups",
            "schema": GROUP_URN,
            "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/Group"},
        }
    )
    return [user.model_dump(), group.model_dump()]


def schemas(base_url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for model in (User, ScimGroup, EnterpriseUser, FrontdeskUser):
        schema = model.to_schema()
        schema.meta = Meta(resource_type="Schema", location=f"{base_url}/Schemas/{schema.id}")
        out.append(schema.model_dump())
    return out
