-- The purpose of each read by a back office, as the person's access log shows it: the
-- procedure the submission was made for ("procedure: <online service id>").
ALTER TABLE access_log ADD COLUMN purpose text NOT NULL DEFAULT '' CHECK (length(purpose) <= 500);
