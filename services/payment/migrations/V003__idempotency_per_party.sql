-- Idempotency keys belong to the paying party: two citizens may choose the same key.
ALTER TABLE payments DROP CONSTRAINT payments_idempotency;
ALTER TABLE payments ADD CONSTRAINT payments_idempotency UNIQUE (tenant, party_id, idempotency_key);
