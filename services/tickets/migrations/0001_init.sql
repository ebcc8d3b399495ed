-- Tickets (incidents and change requests), their comments, their history, and the
-- per-workspace number counters. Every row carries workspace_id and every query filters on it.
create extension if not exists pg_trgm;

create table ticket_counters (
    workspace_id uuid not null,
    type text not null,
    last_seq int not null,
    primary key (workspace_id, type)
);

create table tickets (
    id uuid primary key,
    workspace_id uuid not null,
    type text not null check (type in ('incident', 'change_request')),
    seq int not null,
    title text not null,
    description text not null,
    status text not null
        check (status in ('new', 'in_progress', 'waiting_for_requester', 'resolved', 'closed')),
    requester_id uuid not null,
    assignee_id uuid,
    impact text not null check (impact in ('low', 'medium', 'high')),
    urgency text not null check (urgency in ('low', 'medium', 'high')),
    priority smallint not null check (priority between 1 and 5),
    reason text not null default '',
    risk text check (risk in ('low', 'medium', 'high')),
    planned_start timestamptz,
    planned_end timestamptz,
    idempotency_key text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    resolved_at timestamptz,
    closed_at timestamptz,
    constraint tickets_number unique (workspace_id, type, seq),
    constraint tickets_planned check (planned_end is null or planned_end > planned_start)
);

create unique index tickets_idempotency on tickets (workspace_id, requester_id, idempotency_key)
    where idempotency_key is not null;
-- "My tickets", newest first (keyset on created_at, id).
create index tickets_by_requester on tickets (workspace_id, requester_id, created_at desc, id desc);
-- The queue's sort orders.
create index tickets_by_created on tickets (workspace_id, created_at desc, id desc);
create index tickets_by_updated on tickets (workspace_id, updated_at desc, id desc);
create index tickets_by_priority on tickets (workspace_id, priority, created_at, id);
create index tickets_by_assignee on tickets (workspace_id, assignee_id, created_at desc, id desc);
create index tickets_text on tickets using gin ((title || ' ' || description) gin_trgm_ops);

create table ticket_comments (
    id uuid primary key,
    workspace_id uuid not null,
    ticket_id uuid not null references tickets (id),
    author_id uuid,
    body text not null,
    internal boolean not null,
    created_at timestamptz not null default clock_timestamp()
);
create index ticket_comments_by_ticket on ticket_comments (workspace_id, ticket_id, created_at);

create table ticket_history (
    id bigserial primary key,
    workspace_id uuid not null,
    ticket_id uuid not null references tickets (id),
    kind text not null check (kind in ('status', 'field')),
    field text not null,
    old_value text not null default '',
    new_value text not null default '',
    actor_id uuid,
    note text not null default '',
    by_requester_comment boolean not null default false,
    created_at timestamptz not null default clock_timestamp()
);
create index ticket_history_by_ticket on ticket_history (workspace_id, ticket_id, id);
