-- The platform's database roles: one per service (stadtportal_<service>), owner of that
-- service's schema and of nothing else, so a service can neither read nor change another
-- service's tables. The service runs its migrations and serves as that role. The
-- database's owner role "stadtportal" (operators, backups, tests) is made a member of
-- each. Run as a superuser, connected to the platform's database; safe to run again.
-- It also hands schemas made before per-service roles (and everything in them) to their
-- role. Passwords are the operator's: ALTER ROLE stadtportal_<service> PASSWORD '…'.
-- Adding a service: add its name to the list (docs/adding-a-service.md).
DO $roles$
DECLARE
  svc text;
  svc_role text;
  obj record;
BEGIN
  FOREACH svc IN ARRAY ARRAY['identity', 'accounts', 'submission', 'payment', 'messaging', 'connector'] LOOP
    svc_role := 'stadtportal_' || svc;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = svc_role) THEN
      EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION', svc_role);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'stadtportal') THEN
      EXECUTE format('GRANT %I TO stadtportal', svc_role);
    END IF;
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', svc, svc_role);
    EXECUTE format('ALTER SCHEMA %I OWNER TO %I', svc, svc_role);
    -- Tables (their identity sequences follow them) and functions made by another role.
    FOR obj IN
      SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = svc AND c.relkind IN ('r', 'p') AND c.relowner <> to_regrole(svc_role)
    LOOP
      EXECUTE format('ALTER TABLE %I.%I OWNER TO %I', svc, obj.relname, svc_role);
    END LOOP;
    FOR obj IN
      SELECT p.oid::regprocedure AS routine FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = svc AND p.proowner <> to_regrole(svc_role)
    LOOP
      EXECUTE format('ALTER ROUTINE %s OWNER TO %I', obj.routine, svc_role);
    END LOOP;
    -- Nobody else may use the schema (a service role is never a member of another's).
    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', svc);
  END LOOP;
END
$roles$;
-- Nothing is created outside the services' schemas.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
