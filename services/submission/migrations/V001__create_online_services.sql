-- The catalogue of online services. Form definitions, drafts and submissions follow.
CREATE TABLE online_services (
  tenant                   text NOT NULL CHECK (tenant ~ '^[0-9]{8}$'),
  id                       text NOT NULL CHECK (id ~ '^[a-z][a-z0-9-]{0,63}$'),
  name_de                  text NOT NULL,
  name_en                  text NOT NULL,
  description_de           text NOT NULL,
  description_en           text NOT NULL,
  category                 text NOT NULL,
  department               text NOT NULL,
  required_assurance_level text NOT NULL CHECK (required_assurance_level IN ('low', 'substantial', 'high')),
  fee_minor                bigint NOT NULL DEFAULT 0 CHECK (fee_minor >= 0),
  fee_currency             text NOT NULL DEFAULT 'EUR' CHECK (fee_currency ~ '^[A-Z]{3}$'),
  fee_per_unit             boolean NOT NULL DEFAULT false,
  retention_days           integer NOT NULL CHECK (retention_days > 0),
  PRIMARY KEY (tenant, id)
);

CREATE INDEX online_services_category ON online_services (tenant, category, id);
