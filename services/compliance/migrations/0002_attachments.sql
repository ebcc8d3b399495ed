-- Files of issues, their comments and control tests (evidence): the `attachments` table every
-- service that keeps files creates (its SQL is services/chassis/attachment_store.py). The bytes
-- are in the object store under object_key; a row exists before its object does (state
-- 'uploading'), so the sweeper can always find and remove what a failed or abandoned upload left.
-- The same shape as the tickets service's table.
create table attachments (
    workspace_id uuid not null,
    id uuid not null,
    item_kind text check (item_kind in ('issue', 'control_test')),  -- null while staged
    item_id uuid,
    comment_id uuid,  -- null: the item's own file (given at its creation)
    internal boolean not null default false,  -- the file of an internal note
    uploader_id uuid,
    name text not null,
    content_type text not null default '',
    size bigint not null default 0,
    sha256 text not null default '',
    object_key text not null,
    state text not null check (state in ('uploading', 'staged', 'attached', 'removed')),
    created_at timestamptz not null default clock_timestamp(),
    primary key (workspace_id, id),
    constraint attachments_placed check ((state = 'attached') = (item_id is not null)
        or state = 'removed')
);
create index attachments_by_item
    on attachments (workspace_id, item_kind, item_id, created_at) where state = 'attached';
create index attachments_by_uploader
    on attachments (workspace_id, uploader_id) where state = 'staged';
create index attachments_sweep on attachments (state, created_at) where state <> 'attached';
