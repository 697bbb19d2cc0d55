// The test provider's accounts: fixed and public (local runs and tests only), the same
// people as the SAML stand-in's. The login is the subject (sub); acr values are the
// eIDAS levels of assurance.
export const ACR_VALUES = [
  'http://eidas.europa.eu/LoA/low',
  'http://eidas.europa.eu/LoA/substantial',
  'http://eidas.europa.eu/LoA/high',
];

export const ACCOUNTS = {
  erika: {
    password: 'erika-test-1',
    acr: 'http://eidas.europa.eu/LoA/substantial',
    claims: {
      given_name: 'Erika',
      family_name: 'Mustermann',
      birthdate: '1964-08-12',
      email: 'erika.mustermann@example.org',
      email_verified: true,
      address: {
        street_address: 'Heidestraße 17',
        postal_code: '51147',
        locality: 'Köln',
        country: 'DE',
        formatted: 'Heidestraße 17\n51147 Köln\nDE',
      },
    },
  },
  max: {
    password: 'max-test-1',
    acr: 'http://eidas.europa.eu/LoA/high',
    claims: {
      given_name: 'Max',
      family_name: 'Mustermann',
      birthdate: '1980-01-31',
      email: 'max.mustermann@example.org',
      email_verified: true,
      address: {
        street_address: 'Marienplatz 8',
        postal_code: '80331',
        locality: 'München',
        country: 'DE',
        formatted: 'Marienplatz 8\n80331 München\nDE',
      },
    },
  },
};
