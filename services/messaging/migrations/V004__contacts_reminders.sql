-- Whether a party wants reminders before its documents expire by e-mail too (accounts'
-- preference, from preferences.changed); on until the party says otherwise, as there.
ALTER TABLE contacts ADD COLUMN notify_reminders boolean NOT NULL DEFAULT true;
