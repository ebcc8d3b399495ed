-- Tests, issues, comments and history point at rows of their own workspace (issue 12).
-- A null control_id / control_test_id is still allowed (MATCH SIMPLE skips the check).
alter table controls add constraint controls_ws_id unique (workspace_id, id);
alter table control_tests add constraint control_tests_ws_id unique (workspace_id, id);
alter table issues add constraint issues_ws_id unique (workspace_id, id);

alter table control_tests
    drop constraint control_tests_control_id_fkey,
    add constraint control_tests_control foreign key (workspace_id, control_id)
        references controls (workspace_id, id);

alter table issues
    drop constraint issues_control_id_fkey,
    drop constraint issues_control_test_id_fkey,
    add constraint issues_control foreign key (workspace_id, control_id)
        references controls (workspace_id, id),
    add constraint issues_control_test foreign key (workspace_id, control_test_id)
        references control_tests (workspace_id, id);

alter table issue_comments
    drop constraint issue_comments_issue_id_fkey,
    add constraint issue_comments_issue foreign key (workspace_id, issue_id)
        references issues (workspace_id, id);

alter table issue_history
    drop constraint issue_history_issue_id_fkey,
    add constraint issue_history_issue foreign key (workspace_id, issue_id)
        references issues (workspace_id, id);

-- The issue a failed test raised (checked at commit: the test and its issue are written in
-- one transaction, in either order).
alter table control_tests
    add constraint control_tests_issue foreign key (workspace_id, issue_id)
        references issues (workspace_id, id) deferrable initially deferred;
