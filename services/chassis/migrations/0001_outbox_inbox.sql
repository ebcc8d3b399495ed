-- Tables every service database has: the transactional outbox, the consumer inbox,
-- and dead letters for messages that can never be handled.
create table if not exists outbox (
    id bigserial primary key,
    event_id uuid not null unique,
    workspace_id uuid,
    subject text not null,
    payload bytea not null,
    created_at timestamptz not null default now(),
    sent_at timestamptz,
    attempts int not null default 0
);
create index if not exists outbox_unsent on outbox (id) where sent_at is null;

create table if not exists inbox (
    consumer text not null,
    event_id uuid not null,
    handled_at timestamptz not null default now(),
    primary key (consumer, event_id)
);

create table if not exists dead_letters (
    id bigserial primary key,
    consumer text not null,
    subject text not null,
    event_id text,
    payload bytea not null,
    error text not null,
    deliveries int not null,
    failed_at timestamptz not null default now()
);
