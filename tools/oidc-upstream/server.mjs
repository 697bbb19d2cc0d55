// A certified OpenID Provider (npm oidc-provider) on loopback that stands in for an
// OpenID Connect upstream in local runs and tests. Never for production: its accounts
// and passwords are fixed and public.
//
// Environment:
//   STADTPORTAL_OIDC_OP_PORT           port on 127.0.0.1 (issuer http://127.0.0.1:PORT)
//   STADTPORTAL_OIDC_OP_CLIENT_SECRET  the client secret of client "stadtportal" (16+ characters)
//   STADTPORTAL_OIDC_OP_REDIRECT_URI   its redirect URI (default: the gateway's generic callback on :8080)
//   STADTPORTAL_OIDC_OP_SECOND_CLIENT_JWKS  optional: the public JWK set (JSON) of a second client,
//                                      "stadtportal-second", that authenticates with private_key_jwt
//                                      (same redirect URI): a relying party of another service at
//                                      the same provider, for tests of audience checks and of
//                                      private_key_jwt client authentication
//   STADTPORTAL_OIDC_OP_STATE          folder for the signing keys (jwks.json: created on first start,
//                                      read on later starts, so a key rotation can be staged by editing it)
//
// Code flow only, client_secret_basic, PKCE S256 required. The log-in page checks
// the password and sets the account's eIDAS level of assurance as the acr claim.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

import Provider from 'oidc-provider';

import { ACCOUNTS, ACR_VALUES } from './accounts.mjs';

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    console.error(`oidc-upstream: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

const port = Number(env('STADTPORTAL_OIDC_OP_PORT'));
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error('oidc-upstream: STADTPORTAL_OIDC_OP_PORT is not a port');
  process.exit(2);
}
const clientSecret = env('STADTPORTAL_OIDC_OP_CLIENT_SECRET');
if (clientSecret.length < 16) {
  console.error('oidc-upstream: STADTPORTAL_OIDC_OP_CLIENT_SECRET needs 16 characters or more');
  process.exit(2);
}
const redirectUri = env('STADTPORTAL_OIDC_OP_REDIRECT_URI',
  'http://127.0.0.1:8080/api/v1/auth/oidc/generic/callback');
const stateDir = env('STADTPORTAL_OIDC_OP_STATE');
const issuer = `http://127.0.0.1:${port}`;

// RS256 and ES256 signing keys: generated on first start, kept in the state folder.
function signingKeys() {
  const file = path.join(stateDir, 'jwks.json');
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const jwk = (alg, type, options) => ({
    ...crypto.generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' }),
    alg, use: 'sig', kid: `${alg.toLowerCase()}-${crypto.randomUUID()}`,
  });
  const jwks = {
    keys: [jwk('RS256', 'rsa', { modulusLength: 2048 }), jwk('ES256', 'ec', { namedCurve: 'P-256' })],
  };
  fs.mkdirSync(stateDir, { recursive: true });
  fs.writeFileSync(file, JSON.stringify(jwks, null, 2), { mode: 0o600 });
  return jwks;
}

const clients = [{
  client_id: 'stadtportal',
  client_secret: clientSecret,
  redirect_uris: [redirectUri],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
}];
if (process.env.STADTPORTAL_OIDC_OP_SECOND_CLIENT_JWKS) {
  let jwks;
  try {
    jwks = JSON.parse(process.env.STADTPORTAL_OIDC_OP_SECOND_CLIENT_JWKS);
  } catch {
    jwks = undefined;
  }
  if (!Array.isArray(jwks?.keys) || jwks.keys.some((key) => key.d !== undefined)) {
    console.error('oidc-upstream: STADTPORTAL_OIDC_OP_SECOND_CLIENT_JWKS is not a public JWK set');
    process.exit(2);
  }
  clients.push({
    client_id: 'stadtportal-second',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'private_key_jwt',
    jwks,
  });
}

const provider = new Provider(issuer, {
  clients,
  responseTypes: ['code'],
  pkce: { required: () => true },
  acrValues: ACR_VALUES,
  scopes: ['openid', 'profile', 'email', 'address'],
  claims: {
    openid: ['sub'],
    profile: ['given_name', 'family_name', 'birthdate'],
    email: ['email', 'email_verified'],
    address: ['address'],
  },
  async findAccount(_ctx, id) {
    const account = ACCOUNTS[id];
    if (!account) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...account.claims }) };
  },
  // The user's consent is implied: stadtportal is the only client.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile email address');
    await grant.save();
    return grant;
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: { devInteractions: { enabled: false } },
  jwks: signingKeys(),
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  ttl: { AuthorizationCode: 60, AccessToken: 600, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
});

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(res, uid, status, message) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><html><head><title>Log in (test provider)</title></head><body>
<h1>Log in at the test OpenID Provider</h1>${message ? `<p role="alert">${escapeHtml(message)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label>Login <input name="login" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Log in</button></form></body></html>`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 16384) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// The log-in interaction: GET shows the form, POST checks the password.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name !== 'login') {
    // Only "login" prompts reach here: consent is granted by loadExistingGrant.
    return provider.interactionFinished(req, res, {}, { mergeWithLastSubmission: true });
  }
  if (req.method === 'GET') return loginPage(res, details.uid, 200);
  if (req.method !== 'POST' || !req.url.endsWith('/login')) {
    res.writeHead(405).end();
    return undefined;
  }
  const form = await readForm(req);
  const login = form.get('login') ?? '';
  const account = Object.hasOwn(ACCOUNTS, login) ? ACCOUNTS[login] : undefined;
  const given = Buffer.from(form.get('password') ?? '');
  const expected = Buffer.from(account?.password ?? '');
  if (!account || given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
    return loginPage(res, details.uid, 401, 'Unknown login or wrong password.');
  }
  return provider.interactionFinished(req, res, {
    login: { accountId: login, acr: account.acr, amr: ['pwd'] },
  }, { mergeWithLastSubmission: false });
}

const handle = provider.callback();
const server = http.createServer((req, res) => {
  if (!req.url.startsWith('/interaction/')) return handle(req, res);
  return interaction(req, res).catch((err) => {
    console.error(`oidc-upstream: interaction failed: ${err.message}`);
    if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`interaction failed: ${err.message}\n`);
  });
});
provider.on('server_error', (_ctx, err) => console.error(`oidc-upstream: ${err.stack}`));
server.listen(port, '127.0.0.1', () => {
  console.log(`oidc-upstream: issuer ${issuer}, redirect URI ${redirectUri}, keys in ${stateDir}/jwks.json`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
