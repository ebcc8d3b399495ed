-- SCIM 2.0 provisioning: per-workspace bearer tokens and what identity providers send beyond
-- the person itself (userName, externalId and the other SCIM attributes, kept as given).
create table scim_tokens (
    id uuid primary key,
    workspace_id uuid not null references workspaces (id) on delete cascade,
    name text not null,
    -- sha256 of the secret; the secret itself is shown once and never stored.
    token_hash bytea not null unique,
    prefix text not null,
    created_by text not null default '',
    created_at timestamptz not null default now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);
create index scim_tokens_workspace on scim_tokens (workspace_id, created_at);

create table scim_users (
    workspace_id uuid not null,
    person_id uuid primary key,
    user_name text not null,
    external_id text,
    -- The SCIM resource as last written (core, enterprise and Frontdesk attributes), without
    -- what the person itself holds authoritatively (id, meta, groups) and never a password.
    resource jsonb not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    -- DELETE deactivates the person and hides the SCIM resource (404 from then on); nothing is lost.
    deleted_at timestamptz,
    foreign key (workspace_id, person_id) references persons (workspace_id, id) on delete cascade
);
create unique index scim_users_user_name on scim_users (workspace_id, lower(user_name))
    where deleted_at is null;
create index scim_users_external_id on scim_users (workspace_id, external_id);

create table scim_groups (
    workspace_id uuid not null,
    group_id uuid primary key,
    external_id text,
    resource jsonb not null default '{}',
    updated_at timestamptz not null default now(),
    foreign key (workspace_id, group_id) references groups (workspace_id, id) on delete cascade
);
