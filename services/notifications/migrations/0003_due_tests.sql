-- The open control tests and their assignees and due dates, as the compliance events tell
-- them (a read model), for the "due in N days" reminders; reminded_for is the due date a
-- reminder was sent for (a test moved to a later date is reminded again).
create table due_tests (
    workspace_id uuid not null,
    control_test_id uuid not null,
    number text not null,
    title text not null,
    assignee_id uuid,
    due_date date not null,
    reminded_for date,
    primary key (workspace_id, control_test_id)
);

create index due_tests_due on due_tests (due_date) where assignee_id is not null;
