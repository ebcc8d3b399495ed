-- Every reference between workspace rows names the workspace too, so a membership can never
-- join workspace A's person to workspace B's role or group (issue 12).
alter table persons add constraint persons_ws_id unique (workspace_id, id);
alter table roles add constraint roles_ws_id unique (workspace_id, id);
alter table groups add constraint groups_ws_id unique (workspace_id, id);

alter table person_roles
    drop constraint person_roles_person_id_fkey,
    drop constraint person_roles_role_id_fkey,
    add constraint person_roles_person foreign key (workspace_id, person_id)
        references persons (workspace_id, id) on delete cascade,
    add constraint person_roles_role foreign key (workspace_id, role_id)
        references roles (workspace_id, id) on delete cascade;

alter table group_roles
    drop constraint group_roles_group_id_fkey,
    drop constraint group_roles_role_id_fkey,
    add constraint group_roles_group foreign key (workspace_id, group_id)
        references groups (workspace_id, id) on delete cascade,
    add constraint group_roles_role foreign key (workspace_id, role_id)
        references roles (workspace_id, id) on delete cascade;

alter table group_members
    drop constraint group_members_group_id_fkey,
    drop constraint group_members_person_id_fkey,
    add constraint group_members_group foreign key (workspace_id, group_id)
        references groups (workspace_id, id) on delete cascade,
    add constraint group_members_person foreign key (workspace_id, person_id)
        references persons (workspace_id, id) on delete cascade;
