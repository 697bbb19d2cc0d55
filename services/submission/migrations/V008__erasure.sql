-- The erasure of a person (party.erasure_requested): an organisation's drafts a member
-- wrote stay the organisation's, but no longer name the member's account once the
-- member's account is erased (submissions could already do without it since V007).
ALTER TABLE drafts ALTER COLUMN account_id DROP NOT NULL;
