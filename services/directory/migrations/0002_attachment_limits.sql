-- A workspace's attachment limits, read by the services that keep files (tickets, compliance).
alter table portal_settings
    add column attachment_max_file_mb int not null default 25
        check (attachment_max_file_mb between 1 and 1024),
    add column attachment_max_item_mb int not null default 100
        check (attachment_max_item_mb between 1 and 10240),
    add column attachment_max_files int not null default 20
        check (attachment_max_files between 1 and 1000);
