-- What each person signed in from (addresses and devices, as keyed digests: never the address
-- itself), so a sign-in from a new one is told to them (a security mail).
create table sign_ins (
    workspace_id uuid not null,
    person_id uuid not null,
    what text not null check (what in ('address', 'device')),
    digest text not null,
    first_seen_at timestamptz not null default now(),
    primary key (workspace_id, person_id, what, digest)
);
