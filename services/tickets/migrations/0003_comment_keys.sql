-- A comment added with an idempotency key (a reply by e-mail: its Message-ID) is added once:
-- the same author sending the same key again gets the first comment back.
alter table ticket_comments add column idempotency_key text;

create unique index ticket_comments_once on ticket_comments (workspace_id, author_id, idempotency_key)
    where idempotency_key is not null;
