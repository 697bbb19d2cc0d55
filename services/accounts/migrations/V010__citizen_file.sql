-- The citizen file (Bürgerakte): one timeline per party of what happened to it across the
-- platform, projected from the events of the other services.
--
-- file_events is the journal of the events the file took, as they came (their payload),
-- once per event id; file_items is derived from it by one function (the consumer's, and
-- the operator command `stadtportal-accounts rebuild-file`, which recomputes the items
-- from the journal). Neither references parties: an event may name a party accounts
-- has not made yet (a person's party is made on first use), and its items wait for it.
CREATE TABLE file_events (
  event_id    text        PRIMARY KEY CHECK (event_id ~ '^[a-z]+-[0-9]{1,18}$'),
  topic       text        NOT NULL,
  tenant      text        NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  party_id    uuid        NOT NULL,
  occurred_at timestamptz NOT NULL,
  payload     jsonb       NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX file_events_by_party ON file_events (tenant, party_id);

-- One item per event at most. The order is occurred_at, then the event's id: its source
-- service and outbox number (so "payment-10" follows "payment-9").
CREATE TABLE file_items (
  seq          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant       text        NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  party_id     uuid        NOT NULL,
  occurred_at  timestamptz NOT NULL,
  event_source text        NOT NULL,
  event_seq    bigint      NOT NULL,
  kind         text        NOT NULL CHECK (kind IN ('submission_status', 'payment', 'refund', 'message', 'notice',
                                                    'reply', 'system_message', 'reminder', 'consent',
                                                    'provider_link')),
  service_id   text        NOT NULL DEFAULT '',
  summary      jsonb       NOT NULL,
  link         text        NOT NULL,
  source_event text        NOT NULL UNIQUE REFERENCES file_events (event_id) ON DELETE CASCADE
);
CREATE INDEX file_items_timeline ON file_items (tenant, party_id, occurred_at, event_source, event_seq);
