// Acceptance of stadtportal's OpenID Provider by a certified relying party: openid-client 5
// (pinned by scripts/npm-tools, found through NODE_PATH) against the running platform.
// A partner portal is registered through the admin API; the person logs in on our page,
// driven here as a browser would (forms, cookies, redirects by hand). Checked: discovery,
// code + PKCE S256 + state + nonce, the ID token (openid-client's validation), userinfo,
// refresh rotation and reuse detection, RP-initiated log-out, a private_key_jwt client,
// introspection, and back-channel log-out received and verified against our JWK Set.
//
// Input (environment, or KEY=VALUE lines of the file OIDC_RP_ENV_FILE): OIDC_RP_ISSUER (the
// gateway's origin), OIDC_RP_ADMIN_TOKEN (a tenant admin's session past the second
// factor), OIDC_RP_EMAIL and OIDC_RP_PASSWORD (a verified person). Exit code 0 when every
// step passed.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const { Issuer, generators, custom, errors } = require('openid-client');
const jose = require('jose');

const env = { ...process.env };
if (env.OIDC_RP_ENV_FILE) {
  for (const line of fs.readFileSync(env.OIDC_RP_ENV_FILE, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
}
const ISSUER = env.OIDC_RP_ISSUER;
const ADMIN = env.OIDC_RP_ADMIN_TOKEN;
const EMAIL = env.OIDC_RP_EMAIL;
const PASSWORD = env.OIDC_RP_PASSWORD;
for (const [name, value] of Object.entries({ ISSUER, ADMIN, EMAIL, PASSWORD })) {
  if (!value) throw new Error(`OIDC_RP_${name} is not set`);
}
custom.setHttpOptionsDefaults({ timeout: 10000 });

function step(name) {
  console.log(`- ${name}`);
}

// A browser: one cookie jar for our origin, no redirects followed by itself.
class Browser {
  constructor() {
    this.jar = new Map();
  }
  cookie(name) {
    return this.jar.get(name);
  }
  async send(url, options = {}) {
    const headers = { ...(options.headers || {}) };
    if (url.startsWith(ISSUER) && this.jar.size > 0) {
      headers.Cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    }
    const res = await fetch(url, { ...options, headers, redirect: 'manual' });
    const setCookies =
      typeof res.headers.getSetCookie === 'function'
        ? res.headers.getSetCookie()
        : (res.headers.get('set-cookie') || '').split(/,(?=\s*__Host-)/).filter(Boolean);
    if (url.startsWith(ISSUER)) {
      for (const c of setCookies) {
        const pair = c.split(';')[0];
        const eq = pair.indexOf('=');
        const name = pair.slice(0, eq).trim();
        const value = pair.slice(eq + 1);
        if (value === '' || /Max-Age=0/i.test(c)) this.jar.delete(name);
        else this.jar.set(name, value);
      }
    }
    return { status: res.status, location: res.headers.get('location'), body: await res.text(), url };
  }
  get(url) {
    return this.send(url);
  }
  postForm(url, fields) {
    return this.send(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
  }
}

function unescapeHtml(s) {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

// The forms of our page: action and named fields.
function formsOf(html) {
  const forms = [];
  for (const m of html.matchAll(/<(form|input|button)\b([^>]*)>/gi)) {
    const attrs = m[2];
    const attr = (name) => {
      const a = attrs.match(new RegExp(`\\b${name}="([^"]*)"`, 'i'));
      return a ? unescapeHtml(a[1]) : undefined;
    };
    if (m[1].toLowerCase() === 'form') forms.push({ action: attr('action'), fields: {} });
    else if (forms.length && attr('name')) forms[forms.length - 1].fields[attr('name')] = attr('value') || '';
  }
  return forms;
}

// From the authorization URL through our page (log-in, consent) to the redirect to the client.
async function authorize(browser, url, redirectPrefix) {
  let page = await browser.get(url);
  for (let i = 0; i < 4 && page.status === 200; i++) {
    const forms = formsOf(page.body);
    const login = forms.find((f) => f.action === '/api/v1/oidc/authorize/login');
    const consent = forms.find((f) => f.action === '/api/v1/oidc/authorize/consent');
    if (login) {
      page = await browser.postForm(ISSUER + login.action, { ...login.fields, email: EMAIL, password: PASSWORD });
    } else if (consent) {
      page = await browser.postForm(ISSUER + consent.action, { ...consent.fields, decision: 'allow' });
    } else {
      break;
    }
  }
  assert.equal(page.status, 303, `expected a redirect to the client, got ${page.status}: ${page.body.slice(0, 500)}`);
  assert.ok(page.location.startsWith(redirectPrefix), `redirect to ${page.location}`);
  return page.location;
}

async function adminApi(method, path, body) {
  const res = await fetch(ISSUER + path, {
    method,
    headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.status >= 200 && res.status < 300, `${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

async function rejectsWith(promise, error) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof errors.OPError, `an OPError, not ${e}`);
    assert.equal(e.error, error);
    return true;
  });
}

async function main() {
  // The partner's server: the back-channel log-out receiver.
  // Logout tokens by the receiving client's path (/backchannel/<n>).
  const logoutTokens = { 1: [], 2: [] };
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const m = req.url.match(/^\/backchannel\/([12])$/);
      if (req.method === 'POST' && m && /^application\/x-www-form-urlencoded/.test(req.headers['content-type'] || '')) {
        logoutTokens[m[1]].push(new URLSearchParams(body).get('logout_token'));
      }
      res.writeHead(200, { 'Cache-Control': 'no-store' });
      res.end();
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const partner = `http://127.0.0.1:${receiver.address().port}`;
  const redirectUri = `${partner}/cb`;
  const bye = `${partner}/bye`;

  try {
    step('discovery');
    const issuer = await Issuer.discover(ISSUER);
    assert.equal(issuer.metadata.issuer, ISSUER);
    assert.deepEqual(issuer.metadata.code_challenge_methods_supported, ['S256']);
    assert.deepEqual(issuer.metadata.response_types_supported, ['code']);
    assert.ok(issuer.metadata.end_session_endpoint, 'end_session_endpoint');
    assert.equal(issuer.metadata.backchannel_logout_supported, true);
    assert.equal(issuer.metadata.authorization_response_iss_parameter_supported, true);

    step('a secret client registered by the tenant admin');
    const registered = await adminApi('POST', '/api/v1/admin/partner-clients', {
      name: 'openid-client (acceptance)',
      redirect_uris: [redirectUri],
      post_logout_redirect_uris: [bye],
      backchannel_logout_uri: `${partner}/backchannel/1`,
      scopes: ['openid', 'email', 'profile', 'submissions:read'],
      token_endpoint_auth_method: 'client_secret_basic',
    });
    const client = new issuer.Client({
      client_id: registered.client_id,
      client_secret: registered.client_secret,
      redirect_uris: [redirectUri],
      post_logout_redirect_uris: [bye],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    });

    step('code flow with PKCE S256, state and nonce through our page');
    const browser = new Browser();
    const codeVerifier = generators.codeVerifier();
    const state = generators.state();
    const nonce = generators.nonce();
    const url = client.authorizationUrl({
      scope: 'openid email submissions:read',
      code_challenge: generators.codeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    const callback = await authorize(browser, url, redirectUri);
    const tokens = await client.callback(redirectUri, client.callbackParams(callback), {
      code_verifier: codeVerifier,
      state,
      nonce,
      response_type: 'code',
    });
    const claims = tokens.claims();
    assert.equal(claims.iss, ISSUER);
    assert.deepEqual([].concat(claims.aud), [registered.client_id]);
    assert.equal(claims.acr, 'low');
    assert.ok(claims.sid, 'sid');
    assert.ok(claims.auth_time, 'auth_time');
    assert.ok(tokens.refresh_token, 'refresh_token');
    assert.equal(jose.decodeProtectedHeader(tokens.access_token).typ, 'at+jwt');

    step('userinfo');
    const info = await client.userinfo(tokens.access_token);
    assert.equal(info.sub, claims.sub);
    assert.equal(info.email, EMAIL);
    assert.equal(info.email_verified, true);
    const api = await fetch(`${ISSUER}/api/v1/submissions`, { headers: { Authorization: `Bearer ${tokens.access_token}` } });
    assert.equal(api.status, 200);

    step('refresh: rotated; the old one again revokes the whole grant');
    const refreshed = await client.refresh(tokens.refresh_token);
    assert.ok(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'a new refresh token');
    assert.equal((await client.userinfo(refreshed.access_token)).sub, claims.sub);
    await rejectsWith(client.refresh(tokens.refresh_token), 'invalid_grant');
    await rejectsWith(client.refresh(refreshed.refresh_token), 'invalid_grant');
    const revoked = await fetch(`${ISSUER}/api/v1/submissions`, {
      headers: { Authorization: `Bearer ${refreshed.access_token}` },
    });
    assert.equal(revoked.status, 401);

    step('RP-initiated log-out: back to the registered URI, the session gone');
    const again = generators.codeVerifier();
    const second = await client.callback(
      redirectUri,
      client.callbackParams(
        await authorize(
          browser,
          client.authorizationUrl({
            scope: 'openid email',
            code_challenge: generators.codeChallenge(again),
            code_challenge_method: 'S256',
            state: 'second',
          }),
          redirectUri,
        ),
      ),
      { code_verifier: again, state: 'second', response_type: 'code' },
    );
    const session = browser.cookie('__Host-stadtportal_session');
    assert.ok(session, 'a session on our page');
    const out = await browser.get(
      client.endSessionUrl({ id_token_hint: second.id_token, post_logout_redirect_uri: bye, state: 'bye-state' }),
    );
    assert.equal(out.status, 303);
    assert.equal(out.location, `${bye}?state=bye-state`);
    assert.equal(browser.cookie('__Host-stadtportal_session'), undefined);
    const me = await fetch(`${ISSUER}/api/v1/me`, { headers: { Authorization: `Bearer ${session}` } });
    assert.equal(me.status, 401);
    const silent = await browser.get(
      client.authorizationUrl({
        scope: 'openid',
        code_challenge: generators.codeChallenge(generators.codeVerifier()),
        code_challenge_method: 'S256',
        state: 'silent',
        prompt: 'none',
      }),
    );
    assert.equal(silent.status, 303);
    assert.equal(new URL(silent.location).searchParams.get('error'), 'login_required');

    step('a second client with private_key_jwt');
    const { publicKey, privateKey } = await jose.generateKeyPair('RS256');
    const publicJwk = { ...(await jose.exportJWK(publicKey)), kid: 'rp-1', alg: 'RS256', use: 'sig' };
    const privateJwk = { ...(await jose.exportJWK(privateKey)), kid: 'rp-1', alg: 'RS256', use: 'sig' };
    const signer = await adminApi('POST', '/api/v1/admin/partner-clients', {
      name: 'openid-client (private_key_jwt)',
      redirect_uris: [`${partner}/signed/cb`],
      backchannel_logout_uri: `${partner}/backchannel/2`,
      scopes: ['openid', 'submissions:read'],
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [publicJwk] },
    });
    assert.equal(signer.client_secret, undefined);
    const client2 = new issuer.Client(
      {
        client_id: signer.client_id,
        redirect_uris: [`${partner}/signed/cb`],
        response_types: ['code'],
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: 'RS256',
      },
      { keys: [privateJwk] },
    );
    const verifier2 = generators.codeVerifier();
    const nonce2 = generators.nonce();
    const tokens2 = await client2.callback(
      `${partner}/signed/cb`,
      client2.callbackParams(
        await authorize(
          browser,
          client2.authorizationUrl({
            scope: 'openid submissions:read',
            code_challenge: generators.codeChallenge(verifier2),
            code_challenge_method: 'S256',
            state: 'signed',
            nonce: nonce2,
          }),
          `${partner}/signed/cb`,
        ),
      ),
      { code_verifier: verifier2, state: 'signed', nonce: nonce2, response_type: 'code' },
    );
    const claims2 = tokens2.claims();
    assert.deepEqual([].concat(claims2.aud), [signer.client_id]);
    assert.notEqual(claims2.sub, undefined);
    // A secret client's credentials do not open the signer's door.
    await rejectsWith(
      new issuer.Client({ client_id: signer.client_id, client_secret: 'x'.repeat(43) }).refresh(tokens2.refresh_token),
      'invalid_client',
    );

    step('introspection: active for its own token');
    const active = await client2.introspect(tokens2.access_token);
    assert.equal(active.active, true);
    assert.equal(active.client_id, signer.client_id);
    assert.equal(active.sub, claims2.sub);
    assert.equal((await client.introspect(tokens2.access_token)).active, false, "another client's token");

    step('back-channel log-out after log-out everywhere, verified against our JWK Set');
    const session2 = browser.cookie('__Host-stadtportal_session');
    const all = await fetch(`${ISSUER}/api/v1/auth/logout-all`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${session2}` },
    });
    assert.ok(all.status === 204 || all.status === 200, `logout-all: ${all.status}`);
    const loggedOutAt = Date.now();
    const deadline = loggedOutAt + 15000;
    while (logoutTokens[2].length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(logoutTokens[2].length, 1, 'one logout token within 15 s');
    if (process.env.STADTPORTAL_TEST_REPORT) {
      fs.appendFileSync(process.env.STADTPORTAL_TEST_REPORT,
        `OpenID Provider: back-channel logout token received ${Date.now() - loggedOutAt} ms after log-out everywhere\n`);
    }
    const jwks = jose.createRemoteJWKSet(new URL(issuer.metadata.jwks_uri));
    const { payload, protectedHeader } = await jose.jwtVerify(logoutTokens[2][0], jwks, {
      issuer: ISSUER,
      audience: signer.client_id,
      typ: 'logout+jwt',
      algorithms: ['RS256'],
    });
    assert.equal(protectedHeader.typ, 'logout+jwt');
    assert.deepEqual(payload.events, { 'http://schemas.openid.net/event/backchannel-logout': {} });
    assert.equal(payload.sid, claims2.sid);
    assert.equal(payload.sub, claims2.sub);
    assert.ok(payload.jti && payload.iat && payload.exp, 'jti, iat, exp');
    assert.equal(payload.nonce, undefined);
    assert.equal((await client2.introspect(tokens2.access_token)).active, false, 'the grant ended');
    await rejectsWith(client2.refresh(tokens2.refresh_token), 'invalid_grant');
    console.log('all steps passed');
  } finally {
    receiver.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
