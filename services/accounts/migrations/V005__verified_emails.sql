-- applied as be6c7addea0931bb
-- (with inbox, which libs/events/migrations now creates)
-- The verified e-mail address of each identity account, from identity's
-- account.verified events: an invitation is accepted only by the account whose verified
-- address it was sent to. And the inbox of consumed events (exactly-once effects).
CREATE TABLE verified_emails (
  account_id  uuid        PRIMARY KEY,
  tenant      text        NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  email       text        NOT NULL,
  verified_at timestamptz NOT NULL DEFAULT now()
);
