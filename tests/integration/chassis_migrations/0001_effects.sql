-- Deliberately not idempotent: applying it twice fails, which the parallel test relies on.
create table effects (event_id uuid not null, note text not null);
