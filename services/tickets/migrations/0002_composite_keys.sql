-- A comment or history row points at a ticket of its own workspace (issue 12).
alter table tickets add constraint tickets_ws_id unique (workspace_id, id);

alter table ticket_comments
    drop constraint ticket_comments_ticket_id_fkey,
    add constraint ticket_comments_ticket foreign key (workspace_id, ticket_id)
        references tickets (workspace_id, id);

alter table ticket_history
    drop constraint ticket_history_ticket_id_fkey,
    add constraint ticket_history_ticket foreign key (workspace_id, ticket_id)
        references tickets (workspace_id, id);
