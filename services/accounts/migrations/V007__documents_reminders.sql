-- Documents with an expiry of a party (identity card, passport, residential parking
-- permit, dog tax tag…), entered by the person or recorded by a department when it
-- approved a submission, and the reminders before they expire: one row per document and
-- due date, sent once (claimed FOR UPDATE SKIP LOCKED and marked sent in the transaction
-- that writes the reminder.due event).
CREATE TABLE documents (
  id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant        text        NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  party_id      uuid        NOT NULL REFERENCES parties (id) ON DELETE CASCADE,
  type          text        NOT NULL CHECK (type ~ '^[a-z][a-z0-9_]{0,63}$'),
  label         text        NOT NULL DEFAULT '' CHECK (length(label) <= 80),
  expires_on    date        NOT NULL,
  source        text        NOT NULL CHECK (source IN ('person', 'department')),
  -- The type's lead time when the document was stored (the reminder's due date follows).
  remind_days_before integer NOT NULL CHECK (remind_days_before BETWEEN 1 AND 365),
  submission_id uuid,
  reference     text        NOT NULL DEFAULT '',
  destination   text        NOT NULL DEFAULT '',
  created_at    timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT department_names_submission CHECK (source = 'person' OR submission_id IS NOT NULL)
);
CREATE INDEX documents_by_party ON documents (tenant, party_id, expires_on);
-- A department records a submission's document of a type once (its event may come twice).
CREATE UNIQUE INDEX documents_by_submission ON documents (tenant, submission_id, type) WHERE source = 'department';

CREATE TABLE reminders (
  id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant       text        NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  party_id     uuid        NOT NULL REFERENCES parties (id) ON DELETE CASCADE,
  document_id  uuid        NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
  due_on       date        NOT NULL,
  state        text        NOT NULL DEFAULT 'scheduled' CHECK (state IN ('scheduled', 'sent', 'cancelled')),
  sent_at      timestamptz,
  cancelled_at timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT one_reminder_per_due_date UNIQUE (document_id, due_on),
  CONSTRAINT sent_has_time CHECK (state <> 'sent' OR sent_at IS NOT NULL)
);
CREATE INDEX reminders_due ON reminders (due_on) WHERE state = 'scheduled';
CREATE INDEX reminders_by_party ON reminders (party_id);
