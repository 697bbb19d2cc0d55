-- One attempt per claim: an attempt names the lease it was made under, so its outcome is
-- counted exactly once, also when the lease ended before it was recorded (another worker
-- holds the delivery by then).
ALTER TABLE delivery_attempts ADD COLUMN lease_token text;
CREATE UNIQUE INDEX delivery_attempts_claim ON delivery_attempts (submission_id, lease_token);

-- A withdrawal is its tenant's: the same submission id named by another tenant neither
-- withdraws this tenant's delivery nor takes the place of its withdrawal.
ALTER TABLE withdrawals DROP CONSTRAINT withdrawals_pkey;
ALTER TABLE withdrawals ADD PRIMARY KEY (tenant, submission_id);
