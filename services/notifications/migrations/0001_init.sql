-- Notifications: the e-mails to send (one row per event, recipient and kind: the intent,
-- recorded with the consumer's inbox row, then sent and marked), and the in-app list.
-- Every row carries workspace_id and every query filters on it.

create table deliveries (
    workspace_id uuid not null,
    id uuid not null,
    event_id uuid not null,
    person_id uuid not null,
    kind text not null,
    email text not null,
    subject text not null,
    body_text text not null,
    body_html text not null,
    -- Message-ID, In-Reply-To, References, List-Unsubscribe, ... as one JSON object
    headers jsonb not null,
    message_id text not null,
    status text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
    attempts int not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_error text not null default '',
    created_at timestamptz not null default now(),
    sent_at timestamptz,
    primary key (workspace_id, id),
    -- Exactly one e-mail per (event, recipient, kind), whatever redelivers the event.
    constraint deliveries_once unique (event_id, person_id, kind)
);

create index deliveries_due on deliveries (next_attempt_at) where status = 'pending';
create index deliveries_person on deliveries (workspace_id, person_id, created_at desc, id desc);

create table notifications (
    workspace_id uuid not null,
    id uuid not null,
    event_id uuid not null,
    person_id uuid not null,
    kind text not null,
    title text not null,
    body text not null,
    link text not null,
    item_kind text not null,
    item_id text not null,
    read_at timestamptz,
    created_at timestamptz not null default now(),
    primary key (workspace_id, id),
    constraint notifications_once unique (event_id, person_id, kind)
);

create index notifications_person on notifications (workspace_id, person_id, created_at desc, id desc);
create index notifications_unread on notifications (workspace_id, person_id) where read_at is null;
