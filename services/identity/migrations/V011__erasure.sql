-- The erasure of an account (DELETE /api/v1/me, docs/data-protection.md "Erasure"):
-- an administrator's look-up stays on record (administrator, time, action, reason) without
-- the person it was about; the audit log is append-only except for the erasure, which
-- removes the person's own entries and what others' entries name of them, in the
-- transaction that sets stadtportal.erasure.
ALTER TABLE admin_access_log ALTER COLUMN target_account_id DROP NOT NULL;

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_LEVEL = 'ROW' AND current_setting('stadtportal.erasure', true) = 'on' THEN
    IF TG_OP = 'DELETE' THEN
      RETURN OLD;
    END IF;
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only';
END
$$;
