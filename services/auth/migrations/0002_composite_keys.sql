-- The one reference inside auth's schema: an e-mail confirmation belongs to the credentials of
-- a person of the same workspace (every other person_id names the directory's person).
delete from email_confirmations c
where not exists (
    select 1 from credentials k where k.workspace_id = c.workspace_id and k.person_id = c.person_id
);
alter table email_confirmations
    add constraint email_confirmations_credentials foreign key (workspace_id, person_id)
        references credentials (workspace_id, person_id) on delete cascade;
