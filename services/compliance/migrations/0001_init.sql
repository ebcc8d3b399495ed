-- Controls, control tests, issues, their comments and history; per-workspace numbering.

create table counters (
    workspace_id uuid not null,
    kind text not null,  -- 'CTL', 'TST', 'ISS'
    value bigint not null,
    primary key (workspace_id, kind)
);

create table controls (
    id uuid primary key,
    workspace_id uuid not null,
    seq bigint not null,
    title text not null,
    description text not null default '',
    test_procedure text not null default '',
    framework_ref text not null default '',
    frequency text not null check (frequency in
        ('ad_hoc', 'daily', 'weekly', 'monthly', 'quarterly', 'yearly')),
    owner_id uuid not null,
    active boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (workspace_id, seq)
);
create index controls_owner on controls (workspace_id, owner_id);

create table control_tests (
    id uuid primary key,
    workspace_id uuid not null,
    seq bigint not null,
    control_id uuid not null references controls (id),
    ad_hoc boolean not null,
    period_start date not null,
    period_end date not null,
    due_date date not null,
    assignee_id uuid,
    state text not null default 'scheduled'
        check (state in ('scheduled', 'overdue', 'completed')),
    overdue_at timestamptz,
    result text check (result in ('pass', 'fail', 'not_applicable')),
    notes text not null default '',
    evidence text not null default '',
    tester_id uuid,
    completed_at timestamptz,
    review text check (review in ('approved', 'rejected')),
    reviewer_id uuid,
    review_notes text not null default '',
    reviewed_at timestamptz,
    issue_id uuid,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (workspace_id, seq),
    check (period_start <= period_end)
);
-- One scheduled test per control and period, whichever replica or trigger creates it.
create unique index control_tests_period on control_tests (workspace_id, control_id, period_start)
    where not ad_hoc;
create index control_tests_assignee on control_tests (workspace_id, assignee_id, due_date);
create index control_tests_open on control_tests (workspace_id, due_date) where state = 'scheduled';
create index control_tests_control on control_tests (workspace_id, control_id, period_start desc);

create table issues (
    id uuid primary key,
    workspace_id uuid not null,
    seq bigint not null,
    title text not null,
    description text not null default '',
    severity text not null check (severity in ('critical', 'high', 'medium', 'low')),
    status text not null check (status in
        ('open', 'investigating', 'remediation', 'resolved', 'closed', 'accepted')),
    reporter_id uuid,
    assignee_id uuid,
    remediation_due_date date,
    acceptance_deadline date,
    control_id uuid references controls (id),
    control_test_id uuid references control_tests (id),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    resolved_at timestamptz,
    closed_at timestamptz,
    unique (workspace_id, seq)
);
create index issues_assignee on issues (workspace_id, assignee_id, seq desc);
create index issues_status on issues (workspace_id, status, seq desc);

create table issue_comments (
    id uuid primary key,
    workspace_id uuid not null,
    issue_id uuid not null references issues (id),
    author_id uuid,
    body text not null,
    created_at timestamptz not null default now()
);
create index issue_comments_issue on issue_comments (workspace_id, issue_id, created_at);

create table issue_history (
    id bigserial primary key,
    workspace_id uuid not null,
    issue_id uuid not null references issues (id),
    field text not null,
    old_value text not null default '',
    new_value text not null default '',
    actor_id uuid,
    note text not null default '',
    changed_at timestamptz not null default now()
);
create index issue_history_issue on issue_history (workspace_id, issue_id, id);
