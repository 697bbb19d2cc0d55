// The test OpenID Provider (server.mjs) as an independent party: openid-client, the
// certified relying party library, logs in at it over HTTP and validates what it says.
// Run by tests/oidc-op/oidc_op_test.sh with the provider started; environment:
//   STADTPORTAL_OIDC_OP_ISSUER, STADTPORTAL_OIDC_OP_CLIENT_SECRET, STADTPORTAL_OIDC_OP_REDIRECT_URI
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';

import * as client from 'openid-client';

import { ACCOUNTS, ACR_VALUES } from './accounts.mjs';

const issuer = process.env.STADTPORTAL_OIDC_OP_ISSUER;
const clientSecret = process.env.STADTPORTAL_OIDC_OP_CLIENT_SECRET;
const redirectUri = process.env.STADTPORTAL_OIDC_OP_REDIRECT_URI;
assert.ok(issuer && clientSecret && redirectUri, 'STADTPORTAL_OIDC_OP_* environment is not set');

const SUBSTANTIAL = 'erika';
const HIGH = 'max';

// A browser of its own per log-in: cookies by name, redirects followed by hand.
class Browser {
  cookies = new Map();

  async request(url, init = {}) {
    const headers = new Headers(init.headers);
    if (this.cookies.size) {
      headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    }
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      this.cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    return res;
  }

  // Follows redirects until the relying party's redirect URI (returned, not fetched)
  // or a page that is not a redirect (returned as { status, html, url }).
  async follow(url, init) {
    let res = await this.request(url, init);
    for (let hops = 0; hops < 10; hops += 1) {
      if (res.status < 300 || res.status >= 400) {
        return { status: res.status, html: await res.text(), url };
      }
      url = new URL(res.headers.get('location'), url).href;
      if (url.startsWith(`${redirectUri}?`)) return { callback: url };
      res = await this.request(url);
    }
    throw new Error('too many redirects');
  }
}

// Fills the page's login form and posts it the way a browser would.
function loginForm(page, login, password) {
  const action = /<form[^>]*action="([^"]+)"/.exec(page.html);
  assert.ok(action, `no login form at ${page.url}: ${page.status} ${page.html.slice(0, 200)}`);
  return {
    url: new URL(action[1], page.url).href,
    init: {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ login, password }).toString(),
    },
  };
}

let config;

// Starts a code flow with PKCE S256, state and nonce; logs in as `login`; returns
// what the callback needs. `authorize` adds or overrides authorization parameters.
async function logIn(login, { password = ACCOUNTS[login].password, authorize = {} } = {}) {
  const verifier = client.randomPKCECodeVerifier();
  const checks = { pkceCodeVerifier: verifier, expectedState: client.randomState(), expectedNonce: client.randomNonce(), idTokenExpected: true };
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile email address',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state: checks.expectedState,
    nonce: checks.expectedNonce,
    acr_values: ACCOUNTS[login].acr,
    ...authorize,
  });
  const browser = new Browser();
  const page = await browser.follow(url.href);
  if (page.callback) return { callback: new URL(page.callback), checks };
  const form = loginForm(page, login, password);
  const after = await browser.follow(form.url, form.init);
  return { callback: after.callback && new URL(after.callback), checks, page: after };
}

async function tokenRequest(code, extra = {}) {
  const metadata = config.serverMetadata();
  return fetch(metadata.token_endpoint, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`stadtportal:${clientSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, ...extra }).toString(),
  });
}

before(async () => {
  config = await client.discovery(new URL(issuer), 'stadtportal', undefined,
    client.ClientSecretBasic(clientSecret), { execute: [client.allowInsecureRequests] });
  // The ID token's signature is checked against the provider's JWKS as well.
  client.enableNonRepudiationChecks(config);
});

describe('discovery', () => {
  it('publishes the issuer, code flow with PKCE S256 and the eIDAS levels', () => {
    const m = config.serverMetadata();
    assert.equal(m.issuer, issuer);
    assert.deepEqual(m.response_types_supported, ['code']);
    assert.deepEqual(m.code_challenge_methods_supported, ['S256']);
    assert.deepEqual(m.acr_values_supported, ACR_VALUES);
    assert.ok(m.id_token_signing_alg_values_supported.includes('RS256'));
    assert.ok(m.id_token_signing_alg_values_supported.includes('ES256'));
  });

  it('serves an RS256 and an ES256 signing key', async () => {
    const jwks = await (await fetch(config.serverMetadata().jwks_uri)).json();
    assert.deepEqual(jwks.keys.map((k) => k.alg).sort(), ['ES256', 'RS256']);
    for (const key of jwks.keys) assert.equal(key.d, undefined, 'private key material published');
  });
});

describe('log-in', () => {
  for (const login of [SUBSTANTIAL, HIGH]) {
    it(`${login}: code exchanged, ID token validated, userinfo of the same subject at the account's acr`, async () => {
      const { callback, checks } = await logIn(login);
      assert.ok(callback, 'no redirect back to the relying party');
      const tokens = await client.authorizationCodeGrant(config, callback, checks);
      const claims = tokens.claims();
      assert.equal(claims.iss, issuer);
      assert.equal(claims.sub, login);
      assert.ok([claims.aud].flat().includes('stadtportal'));
      assert.equal(claims.nonce, checks.expectedNonce);
      assert.equal(claims.acr, ACCOUNTS[login].acr);
      const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
      assert.equal(info.sub, claims.sub);
      for (const [name, value] of Object.entries(ACCOUNTS[login].claims)) {
        assert.deepEqual(info[name], value, name);
      }
    });
  }
});

describe('refusals', () => {
  it('a wrong password gets no code', async () => {
    const { callback, page } = await logIn(SUBSTANTIAL, { password: 'wrong-password-000' });
    assert.equal(callback, undefined);
    assert.equal(page.status, 401);
  });

  it('openid-client refuses a wrong state', async () => {
    const { callback, checks } = await logIn(SUBSTANTIAL);
    await assert.rejects(client.authorizationCodeGrant(config, callback, { ...checks, expectedState: client.randomState() }),
      (err) => err.code === 'OAUTH_INVALID_RESPONSE' && /"state"/.test(err.cause?.message));
  });

  it('openid-client refuses a wrong nonce', async () => {
    const { callback, checks } = await logIn(HIGH);
    await assert.rejects(client.authorizationCodeGrant(config, callback, { ...checks, expectedNonce: client.randomNonce() }),
      (err) => err.code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' && /"nonce"/.test(err.cause?.message));
  });

  it('the provider refuses a token request without the PKCE verifier', async () => {
    const { callback } = await logIn(SUBSTANTIAL);
    const res = await tokenRequest(callback.searchParams.get('code'));
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error, 'invalid_grant');
  });

  it('the provider refuses a replayed code', async () => {
    const { callback, checks } = await logIn(SUBSTANTIAL);
    await client.authorizationCodeGrant(config, callback, checks);
    const res = await tokenRequest(callback.searchParams.get('code'), { code_verifier: checks.pkceCodeVerifier });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error, 'invalid_grant');
  });

  it('the provider refuses an authorization request without a code challenge', async () => {
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri, scope: 'openid', state: client.randomState(), nonce: client.randomNonce(),
    });
    const page = await new Browser().follow(url.href);
    assert.ok(page.callback, `expected an error redirect, got ${page.status}`);
    const params = new URL(page.callback).searchParams;
    assert.equal(params.get('error'), 'invalid_request');
    assert.match(params.get('error_description'), /PKCE/);
  });

  it('the provider refuses a redirect URI it does not know', async () => {
    const verifier = client.randomPKCECodeVerifier();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: `${redirectUri}/elsewhere`, scope: 'openid', state: client.randomState(),
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const page = await new Browser().follow(url.href);
    assert.equal(page.callback, undefined);
    assert.equal(page.status, 400);
    assert.match(page.html, /redirect_uri/);
  });
});
