-- Longest lifetime of a new API token in this workspace (auth enforces it at creation).
alter table portal_settings
    add column api_token_max_days int not null default 90
        check (api_token_max_days between 1 and 3650);
