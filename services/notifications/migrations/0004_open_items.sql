-- The open tickets and issues and who they concern, as the tickets and compliance events tell
-- them (a read model), for the weekly digest; and which digests were made (one a week).
create table open_items (
    workspace_id uuid not null,
    item_kind text not null check (item_kind in ('ticket', 'issue')),
    item_id uuid not null,
    number text not null,
    title text not null default '',
    requester_id uuid,
    assignee_id uuid,
    status text not null,
    primary key (workspace_id, item_kind, item_id)
);

create index open_items_requester on open_items (workspace_id, requester_id);
create index open_items_assignee on open_items (workspace_id, assignee_id);

create table digests (
    workspace_id uuid not null,
    person_id uuid not null,
    week text not null,  -- ISO week, "2026-W50"
    made_at timestamptz not null default now(),
    primary key (workspace_id, person_id, week)
);
