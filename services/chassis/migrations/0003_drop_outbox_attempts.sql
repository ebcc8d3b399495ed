-- outbox.attempts was never written (the relay retries unsent rows with backoff until JetStream
-- acks them and counts nothing per row); dropped so the schema says what the code does.
alter table outbox drop column if exists attempts;
