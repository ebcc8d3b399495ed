-- Credentials, sessions, throttling, two-factor, API tokens, e-mail confirmation and SSO.
-- Tokens and codes are stored only as sha256 hashes; passwords as argon2id hashes.

create table credentials (
    workspace_id uuid not null,
    person_id uuid not null,
    password_hash text,
    email_confirmed boolean not null default true,
    password_changed_at timestamptz,
    created_at timestamptz not null default now(),
    primary key (workspace_id, person_id)
);

create table sessions (
    workspace_id uuid not null,
    id text not null,                      -- sha256 hex of the token
    person_id uuid not null,
    surface text not null check (surface in ('portal', 'management')),
    method text not null,
    client_ip text not null default '',
    user_agent text not null default '',
    enroll_only boolean not null default false,
    created_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    idle_expires_at timestamptz not null,
    expires_at timestamptz not null,
    primary key (workspace_id, id)
);
create index sessions_person on sessions (workspace_id, person_id);
create index sessions_expiry on sessions (expires_at);

-- A password that was right, waiting for the second factor.
create table pending_logins (
    workspace_id uuid not null,
    id text not null,
    person_id uuid not null,
    surface text not null,
    throttle_key text not null,
    attempts int not null default 0,
    expires_at timestamptz not null,
    primary key (workspace_id, id)
);
create index pending_logins_person on pending_logins (workspace_id, person_id);

-- Failed sign-ins per account (e-mail) and per client address, shared by all replicas.
create table login_failures (
    workspace_id uuid not null,
    key text not null,
    failures int not null,
    last_failure_at timestamptz not null,
    blocked_until timestamptz,
    primary key (workspace_id, key)
);

create table totp (
    workspace_id uuid not null,
    person_id uuid not null,
    secret text,                            -- sealed
    pending_secret text,                    -- sealed, while enrolling
    enabled boolean not null default false,
    last_used_step bigint,                  -- a code is accepted only for a later step
    enabled_at timestamptz,
    primary key (workspace_id, person_id)
);

create table recovery_codes (
    workspace_id uuid not null,
    person_id uuid not null,
    code_hash text not null,
    used_at timestamptz,
    created_at timestamptz not null default now(),
    primary key (workspace_id, person_id, code_hash)
);

create table api_tokens (
    workspace_id uuid not null,
    id uuid not null,
    person_id uuid not null,
    name text not null,
    prefix text not null,
    token_hash text not null,
    created_at timestamptz not null default now(),
    last_used_at timestamptz,
    expires_at timestamptz,
    revoked_at timestamptz,
    primary key (workspace_id, id),
    unique (workspace_id, token_hash)
);
create index api_tokens_person on api_tokens (workspace_id, person_id);

create table email_confirmations (
    workspace_id uuid not null,
    token_hash text not null,
    person_id uuid not null,
    expires_at timestamptz not null,
    primary key (workspace_id, token_hash)
);

create table sso_configs (
    workspace_id uuid primary key,
    enabled boolean not null,
    issuer text not null,
    client_id text not null,
    client_secret text not null default '',  -- sealed
    allowed_domains text[] not null default '{}',
    create_unknown_persons boolean not null default false,
    updated_at timestamptz not null default now()
);

create table sso_states (
    workspace_id uuid not null,
    state_hash text not null,
    nonce text not null,
    code_verifier text not null,
    redirect_uri text not null,
    surface text not null,
    next text not null default '',
    expires_at timestamptz not null,
    primary key (workspace_id, state_hash)
);

create table external_identities (
    workspace_id uuid not null,
    issuer text not null,
    subject text not null,
    person_id uuid not null,
    email text not null default '',
    linked_at timestamptz not null default now(),
    last_login_at timestamptz,
    primary key (workspace_id, issuer, subject)
);
create index external_identities_person on external_identities (workspace_id, person_id);
