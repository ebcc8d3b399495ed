-- Webhooks: HTTPS endpoints a workspace's directory events are delivered to (Standard Webhooks
-- signatures), and the delivery log (one row per endpoint and event, retried with backoff).
create table webhook_endpoints (
    id uuid primary key,
    workspace_id uuid not null references workspaces (id) on delete cascade,
    url text not null,
    description text not null default '',
    -- "whsec_<base64>", the signing key (receivers need it to verify; shown in the console).
    secret text not null,
    -- Event names ("person_deactivated", ...); empty: every directory event.
    event_types text[] not null default '{}',
    created_by text not null default '',
    created_at timestamptz not null default now(),
    deleted_at timestamptz,
    unique (workspace_id, id)
);
create index webhook_endpoints_workspace on webhook_endpoints (workspace_id) where deleted_at is null;

create table webhook_deliveries (
    id bigserial primary key,
    workspace_id uuid not null,
    endpoint_id uuid not null,
    event_id uuid not null,
    event_type text not null,
    body text not null,
    status text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
    attempts int not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_status int,
    last_error text not null default '',
    created_at timestamptz not null default now(),
    delivered_at timestamptz,
    unique (endpoint_id, event_id),
    foreign key (workspace_id, endpoint_id) references webhook_endpoints (workspace_id, id)
        on delete cascade
);
create index webhook_deliveries_due on webhook_deliveries (next_attempt_at) where status = 'pending';
create index webhook_deliveries_log on webhook_deliveries (workspace_id, endpoint_id, id desc);
