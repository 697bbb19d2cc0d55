-- The federal service key (LeiKa / FIM Leistungsschlüssel, 14 digits) of every online
-- service, so partner portals find a service by it. Every catalogue sync and publication
-- writes it from the definition, which must carry one. The seeded services get the keys
-- their catalogue files carry (docs/catalogue.md says which are confirmed). The default
-- (no key known) is only for rows this release does not write: services an
-- administrator published before, and rows the previous release writes during a rollout
-- or after a rollback (it does not know the column).
ALTER TABLE online_services
  ADD COLUMN leika text NOT NULL DEFAULT '00000000000000' CHECK (leika ~ '^[0-9]{14}$');

UPDATE online_services SET leika = CASE id
  WHEN 'civil-registry-certificate' THEN '99027002012000'
  WHEN 'residential-parking-permit' THEN '99108001001000'
  WHEN 'dog-tax-registration'       THEN '99102013104000'
  WHEN 'change-of-address'          THEN '00000000000001'
  WHEN 'library-fee-payment'        THEN '00000000000002'
  WHEN 'contact-person-report'      THEN '00000000000003'
  ELSE leika
END WHERE tenant = '09564000';

CREATE INDEX online_services_leika ON online_services (tenant, leika);
