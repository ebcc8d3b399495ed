-- Handler failures counted per event (a failed delivery is the handler's, never an outage's),
-- dead letters that were replayed, and the indexes retention deletes by.
create table if not exists consumer_failures (
    consumer text not null,
    event_id uuid not null,
    failures int not null,
    last_error text not null,
    updated_at timestamptz not null default now(),
    primary key (consumer, event_id)
);
alter table dead_letters add column if not exists replayed_at timestamptz;
create index if not exists outbox_sent on outbox (sent_at) where sent_at is not null;
create index if not exists inbox_handled on inbox (handled_at);
create index if not exists dead_letters_failed on dead_letters (failed_at);
