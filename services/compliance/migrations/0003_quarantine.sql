-- Malware scanning (FRONTDESK_CLAMD, services/chassis/malware.py): an infected upload becomes
-- 'quarantined', its object moved under quarantine/ in the bucket and the signature kept in
-- `malware`. No query that lists, serves, attaches or sweeps files reads that state, so such a
-- row and its object stay for an operator to look at (and remove by hand).
alter table attachments drop constraint attachments_state_check;
alter table attachments add constraint attachments_state_check
    check (state in ('uploading', 'staged', 'attached', 'removed', 'quarantined'));
alter table attachments add column malware text not null default '';
