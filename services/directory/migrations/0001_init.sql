-- The directory's own database: workspaces, portal settings, persons, roles, groups,
-- memberships, import jobs and the audit trail. Every table carries workspace_id.
create extension if not exists pg_trgm;

create table workspaces (
    id uuid primary key,
    slug text not null unique,
    name text not null,
    created_at timestamptz not null default now()
);

create table portal_settings (
    workspace_id uuid primary key references workspaces (id) on delete cascade,
    tickets_enabled boolean not null default true,
    issues_enabled boolean not null default true,
    control_tests_enabled boolean not null default true,
    self_registration text not null default 'off'
        check (self_registration in ('off', 'open', 'domains')),
    registration_domains text[] not null default '{}',
    portal_access_default boolean not null default true,
    -- [{"domain": "acme.com", "portal_access": true}, ...], ordered, first match wins
    portal_access_rules jsonb not null default '[]',
    require_two_factor boolean not null default false,
    updated_at timestamptz not null default now()
);

create table persons (
    id uuid primary key,
    workspace_id uuid not null references workspaces (id) on delete cascade,
    email text not null,
    name text not null default '',
    login_name text not null default '',
    active boolean not null default true,
    portal_access boolean not null,
    notify_ticket_updates boolean not null default true,
    notify_issue_assigned boolean not null default true,
    notify_control_test_assigned boolean not null default true,
    notify_weekly_digest boolean not null default false,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    last_portal_login_at timestamptz
);
-- Unique e-mail per workspace, case-insensitive; also the keyset order of every person list.
create unique index persons_email on persons (workspace_id, lower(email));
-- Login names are optional; when given they are unique per workspace, case-insensitive.
create unique index persons_login_name on persons (workspace_id, lower(login_name))
    where login_name <> '';
-- Substring search over e-mail, name and login name.
create index persons_search on persons using gin (
    (lower(email) || ' ' || lower(name) || ' ' || lower(login_name)) gin_trgm_ops
);
create index persons_portal_usage on persons (workspace_id, last_portal_login_at)
    where portal_access;

create table roles (
    id uuid primary key,
    workspace_id uuid not null references workspaces (id) on delete cascade,
    name text not null,
    description text not null default '',
    permissions text[] not null default '{}',
    -- 'portal_user' or 'workspace_admin' for the built-in roles (which may be renamed).
    builtin_key text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index roles_name on roles (workspace_id, lower(name));
create unique index roles_builtin on roles (workspace_id, builtin_key) where builtin_key is not null;

create table groups (
    id uuid primary key,
    workspace_id uuid not null references workspaces (id) on delete cascade,
    name text not null,
    description text not null default '',
    -- 'portal_users' or 'administrators' for the built-in groups.
    builtin_key text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index groups_name on groups (workspace_id, lower(name));
create unique index groups_builtin on groups (workspace_id, builtin_key) where builtin_key is not null;

create table person_roles (
    workspace_id uuid not null,
    person_id uuid not null references persons (id) on delete cascade,
    role_id uuid not null references roles (id) on delete cascade,
    created_at timestamptz not null default now(),
    primary key (person_id, role_id)
);
create index person_roles_role on person_roles (role_id);

create table group_roles (
    workspace_id uuid not null,
    group_id uuid not null references groups (id) on delete cascade,
    role_id uuid not null references roles (id) on delete cascade,
    primary key (group_id, role_id)
);
create index group_roles_role on group_roles (role_id);

create table group_members (
    workspace_id uuid not null,
    group_id uuid not null references groups (id) on delete cascade,
    person_id uuid not null references persons (id) on delete cascade,
    created_at timestamptz not null default now(),
    primary key (group_id, person_id)
);
create index group_members_person on group_members (person_id);

create table import_jobs (
    id uuid primary key,
    workspace_id uuid not null references workspaces (id) on delete cascade,
    actor_id text not null default '',
    format text not null,
    content bytea,
    dry_run boolean not null default false,
    status text not null default 'pending'
        check (status in ('pending', 'running', 'done', 'failed')),
    total_rows int not null default 0,
    rows_done int not null default 0,
    created int not null default 0,
    updated int not null default 0,
    unchanged int not null default 0,
    failed int not null default 0,
    errors jsonb not null default '[]',
    message text not null default '',
    attempts int not null default 0,
    heartbeat_at timestamptz,
    created_at timestamptz not null default now(),
    started_at timestamptz,
    finished_at timestamptz
);
create index import_jobs_waiting on import_jobs (created_at) where status in ('pending', 'running');

create table audit_log (
    seq bigserial primary key,
    id uuid not null unique,
    workspace_id uuid not null,
    actor_id text not null default '',
    action text not null,
    object_type text not null,
    object_id text not null,
    before jsonb,
    after jsonb,
    at timestamptz not null default now()
);
create index audit_log_list on audit_log (workspace_id, seq desc);
create index audit_log_object on audit_log (workspace_id, object_type, object_id, seq desc);
