-- applied as ac8266eb4ee04e32
-- (with outbox, which libs/events/migrations now creates)
-- Versioned form definitions, drafts with attachments, submissions with their status
-- history, the delivery outbox, funnel events and feedback.
ALTER TABLE online_services
  ADD COLUMN destination    text    NOT NULL DEFAULT '',
  ADD COLUMN fee_unit_field text    NOT NULL DEFAULT '',
  ADD COLUMN form_version   integer NOT NULL DEFAULT 0;

CREATE TABLE form_versions (
  tenant       text        NOT NULL,
  service_id   text        NOT NULL,
  version      integer     NOT NULL CHECK (version > 0),
  definition   jsonb       NOT NULL,
  sha256       text        NOT NULL,
  published_by text        NOT NULL,  -- "catalogue" (repository file) or the admin's account id
  published_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, service_id, version),
  FOREIGN KEY (tenant, service_id) REFERENCES online_services (tenant, id)
);

CREATE TABLE drafts (
  id            uuid        PRIMARY KEY,
  seq           bigint      GENERATED ALWAYS AS IDENTITY,
  tenant        text        NOT NULL,
  party_id      uuid        NOT NULL,
  account_id    uuid        NOT NULL,
  service_id    text        NOT NULL,
  form_version  integer     NOT NULL,
  version       bigint      NOT NULL DEFAULT 1,
  data          jsonb       NOT NULL DEFAULT '{}',
  read_only     text[]      NOT NULL DEFAULT '{}',
  last_step     text        NOT NULL DEFAULT '',
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  FOREIGN KEY (tenant, service_id, form_version) REFERENCES form_versions (tenant, service_id, version)
);
CREATE INDEX drafts_mine ON drafts (tenant, party_id, seq DESC);
CREATE INDEX drafts_expiry ON drafts (expires_at);

CREATE TABLE submissions (
  id              uuid        PRIMARY KEY,
  seq             bigint      GENERATED ALWAYS AS IDENTITY,
  tenant          text        NOT NULL,
  party_id        uuid        NOT NULL,
  account_id      uuid        NOT NULL,
  service_id      text        NOT NULL,
  form_version    integer     NOT NULL,
  reference       text        NOT NULL,
  status          text        NOT NULL CHECK (status IN ('submitted', 'awaiting_payment', 'paid', 'delivered',
                    'received_by_department', 'in_progress', 'information_requested', 'approved', 'rejected',
                    'withdrawn', 'closed')),
  data            jsonb       NOT NULL,
  fee_minor       bigint      NOT NULL CHECK (fee_minor >= 0),
  fee_currency    text        NOT NULL,
  draft_id        uuid        NOT NULL,
  idempotency_key text        NOT NULL,
  submitted_at    timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant, reference),
  UNIQUE (tenant, party_id, idempotency_key),
  FOREIGN KEY (tenant, service_id, form_version) REFERENCES form_versions (tenant, service_id, version)
);
-- "My submissions", newest first, with and without a status filter.
CREATE INDEX submissions_mine ON submissions (tenant, party_id, seq DESC);
CREATE INDEX submissions_mine_status ON submissions (tenant, party_id, status, seq DESC);

CREATE TABLE submission_history (
  submission_id uuid        NOT NULL REFERENCES submissions (id),
  seq           bigint      GENERATED ALWAYS AS IDENTITY,
  status        text        NOT NULL,
  note          text        NOT NULL DEFAULT '',
  at            timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (submission_id, seq)
);

-- Per tenant and year, the last reference number handed out.
CREATE TABLE reference_counters (
  tenant text    NOT NULL,
  year   integer NOT NULL,
  last   bigint  NOT NULL,
  PRIMARY KEY (tenant, year)
);

CREATE TABLE attachments (
  id            uuid        PRIMARY KEY,
  tenant        text        NOT NULL,
  party_id      uuid        NOT NULL,
  draft_id      uuid        REFERENCES drafts (id) ON DELETE CASCADE,
  submission_id uuid        REFERENCES submissions (id),
  field         text        NOT NULL,
  filename      text        NOT NULL,
  media_type    text        NOT NULL,
  size          bigint      NOT NULL,
  sha256        text        NOT NULL,
  content       bytea       NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  CHECK ((draft_id IS NULL) <> (submission_id IS NULL))
);
CREATE INDEX attachments_draft ON attachments (draft_id) WHERE draft_id IS NOT NULL;
CREATE INDEX attachments_submission ON attachments (submission_id) WHERE submission_id IS NOT NULL;

-- Where applicants give up: the KPI source. No personal data.
CREATE TABLE funnel_events (
  id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant      text        NOT NULL,
  service_id  text        NOT NULL,
  event       text        NOT NULL CHECK (event IN ('viewed', 'draft_started', 'step_completed', 'saved',
                'validation_failed', 'submitted', 'abandoned')),
  draft_id    uuid,
  step        text        NOT NULL DEFAULT '',
  field       text        NOT NULL DEFAULT '',
  rule        text        NOT NULL DEFAULT '',
  -- Views are counted in memory and written in batches: one row stands for `count` events.
  count       integer     NOT NULL DEFAULT 1 CHECK (count > 0),
  occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX funnel_events_service ON funnel_events (tenant, service_id, occurred_at);

CREATE TABLE feedback (
  submission_id uuid        PRIMARY KEY REFERENCES submissions (id),
  rating        smallint    NOT NULL CHECK (rating BETWEEN 1 AND 5),
  comment       text        NOT NULL DEFAULT '' CHECK (char_length(comment) <= 1000),
  given_at      timestamptz NOT NULL DEFAULT now()
);
