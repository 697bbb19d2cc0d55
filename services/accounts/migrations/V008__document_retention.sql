-- Retention: a document is deleted, with its reminders (ON DELETE CASCADE), twelve months
-- after its expiry date; the job finds them by this index.
CREATE INDEX documents_expiry ON documents (expires_on);
