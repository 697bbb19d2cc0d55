-- The delivery worker claims a delivery with a lease instead of holding its row locked
-- across the network: lease_until is when another worker may claim it again (a worker
-- that died mid-request), lease_token names the claim, so only its holder records the
-- outcome. The snapshot is fetched from submission once and kept for every retry.
-- A submission withdrawn before its delivery is not delivered ('withdrawn'); a
-- withdrawal that arrives before the delivery is kept in withdrawals.
ALTER TABLE deliveries
  ADD COLUMN lease_until timestamptz,
  ADD COLUMN lease_token text,
  ADD COLUMN snapshot    bytea;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
  CHECK (state IN ('pending', 'delivered', 'acknowledged', 'dead', 'withdrawn'));

CREATE TABLE withdrawals (
  submission_id uuid        PRIMARY KEY,
  tenant        text        NOT NULL,
  at            timestamptz NOT NULL DEFAULT now()
);
