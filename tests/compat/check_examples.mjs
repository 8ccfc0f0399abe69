// Runs the Node examples of docs/integrate (express.md, spa.md) against a running Latch.
// The examples are copied next to this script and its node_modules.
//
// The single-page-app examples run behind a stand-in for the browser: every request to
// Latch carries the app's `Origin`, requests that a browser would preflight are
// preflighted, a response without the CORS headers a browser requires fails the way it
// fails in a browser, and cookies are kept for `credentials: 'include'`.
//
// Environment: LATCH_URL, LATCH_USER, LATCH_PASSWORD, LATCH_CORS_ORIGIN (allowed by
// Latch), LATCH_CLIENT_ID and LATCH_CLIENT_SECRET (a confidential client). Reports
// through report.mjs.

import { once } from 'node:events';
import { check, expect, finish } from './report.mjs';

const latch = process.env.LATCH_URL.replace(/\/$/, '');
const [username, password] = [process.env.LATCH_USER, process.env.LATCH_PASSWORD];
async function token(form = {}) {
  const response = await fetch(`${latch}/token`, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'password', username, password, ...form }),
  });
  await expectStatus(response, 200, '/token');
  return response.json();
}

/** Fails with the body of `response` unless it has `status`. */
async function expectStatus(response, status, what) {
  if (response.status !== status) throw new Error(`${what}: ${response.status}: ${await response.text()}`);
}

async function me(accessToken) {
  return fetch(`${latch}/users/me`, { headers: { authorization: `Bearer ${accessToken}` } });
}

// ---------------------------------------------------------------------------------
// express.md

const { app } = await import('./express_app.mjs');
const server = app.listen(0, '127.0.0.1');
await once(server, 'listening');
const api = `http://127.0.0.1:${server.address().port}`;
const call = (path, accessToken, init = {}) =>
  fetch(`${api}${path}`, accessToken ? { ...init, headers: { authorization: `Bearer ${accessToken}` } } : init);

await check('express.md', 'requireToken: 401 without a token or with a forged one', async () => {
  const none = await call('/api/me');
  expect(none.status === 401, `no token: ${none.status}`);
  expect(none.headers.get('www-authenticate') === 'Bearer', `challenge ${none.headers.get('www-authenticate')}`);
  const [header, , signature] = (await token()).access_token.split('.');
  const payload = Buffer.from(JSON.stringify({ sub: 'someone', iss: latch, aud: latch })).toString('base64url');
  const forged = await call('/api/me', `${header}.${payload}.${signature}`);
  expect(forged.status === 401, `forged token: ${forged.status}`);
  expect(/invalid_token/.test(forged.headers.get('www-authenticate')), 'no invalid_token challenge');
});

await check('express.md', 'requireToken: a Latch token reaches /api/me as its user', async () => {
  const { access_token } = await token();
  const user = await (await me(access_token)).json();
  const response = await call('/api/me', access_token);
  await expectStatus(response, 200, '/api/me');
  const body = await response.json();
  expect(body.user === user.id, `user ${body.user}, expected ${user.id}`);
});

await check('express.md', "requireScope('email'): 200 with the scope, 403 without", async () => {
  const full = await call('/api/newsletter', (await token()).access_token);
  expect(full.status === 200, `default scopes: ${full.status}`);
  const narrow = await token({ scope: 'openid profile' });
  expect(!narrow.scope?.split(' ').includes('email'), `granted ${narrow.scope}`);
  const refused = await call('/api/newsletter', narrow.access_token);
  expect(refused.status === 403, `without email: ${refused.status}`);
  expect(/insufficient_scope/.test(refused.headers.get('www-authenticate')), 'no insufficient_scope challenge');
});

await check('express.md', 'requireActiveToken (introspection): refused at once after logout', async () => {
  const { access_token } = await token();
  const before = await call('/api/transfers', access_token, { method: 'POST' });
  await expectStatus(before, 201, 'active token');
  expect((await before.json()).by === username, 'introspection did not name the user');
  const logout = await fetch(`${latch}/logout`, {
    method: 'POST',
    headers: { authorization: `Bearer ${access_token}` },
  });
  expect(logout.status === 204, `logout: ${logout.status}`);
  const after = await call('/api/transfers', access_token, { method: 'POST' });
  expect(after.status === 401, `after logout: ${after.status}`);
  // The signature alone cannot know: the JWT stays valid until it expires.
  expect((await call('/api/me', access_token)).status === 200, 'requireToken refused a still-valid JWT');
});

server.close();

// ---------------------------------------------------------------------------------
// spa.md, behind the browser stand-in

const browser = installBrowser(process.env.LATCH_CORS_ORIGIN, new URL(latch).origin);
const { LatchAuth, LatchError } = await import('./spa_auth.mjs');
const { currentUser, signIn, signOut } = await import('./spa_session.mjs');

await check('spa.md', 'LatchAuth: login, fetch, refresh (concurrent), logout', async () => {
  const auth = new LatchAuth(latch);
  await auth.login(username, password);
  expect(auth.loggedIn, 'not logged in');
  const first = await auth.fetch(`${latch}/users/me`);
  expect(first.status === 200 && (await first.json()).username === username, `/users/me: ${first.status}`);
  const before = browser.lastBearer;
  await Promise.all([auth.refresh(), auth.refresh()]);
  const second = await auth.fetch(`${latch}/users/me`);
  expect(second.status === 200, `after refresh: ${second.status}`);
  const after = browser.lastBearer;
  expect(after !== before, 'refresh kept the same access token');
  await auth.logout();
  expect(!auth.loggedIn, 'still logged in');
  for (const old of [before, after]) expect((await me(old)).status === 401, 'a token outlived the logout');
});

await check('spa.md', 'LatchAuth: a wrong password is a LatchError invalid_grant', async () => {
  try {
    await new LatchAuth(latch).login(username, 'not the password');
  } catch (error) {
    expect(error instanceof LatchError && error.code === 'invalid_grant', `error ${error}`);
    return;
  }
  throw new Error('login succeeded');
});

await check('spa.md', 'cookie session: signIn, currentUser, signOut', async () => {
  const user = await signIn(latch, username, password);
  expect(user.username === username, `signed in as ${user.username}`);
  expect(browser.cookies.size > 0, 'no session cookie');
  expect((await currentUser(latch))?.id === user.id, 'currentUser after signIn');
  await signOut(latch);
  expect((await currentUser(latch)) === null, 'currentUser after signOut');
});

/** Replaces `fetch` with one that speaks to `latchOrigin` as a browser page of `origin` would. */
function installBrowser(origin, latchOrigin) {
  const realFetch = globalThis.fetch;
  const state = { cookies: new Map(), lastBearer: null };
  const fail = (why) => new TypeError(`Failed to fetch (CORS: ${why})`);
  globalThis.fetch = async (input, init = {}) => {
    const request = new Request(input, init);
    if (new URL(request.url).origin !== latchOrigin) return realFetch(input, init);
    const withCredentials = init.credentials === 'include';
    const unsafe = unsafeHeaders(request.headers);
    if (!['GET', 'HEAD', 'POST'].includes(request.method) || unsafe.length > 0) {
      const preflight = await realFetch(request.url, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': request.method,
          ...(unsafe.length > 0 && { 'access-control-request-headers': unsafe.join(',') }),
        },
      });
      const allow = preflight.headers.get('access-control-allow-origin');
      if (!preflight.ok) throw fail(`preflight of ${request.method} ${request.url} answered ${preflight.status}`);
      if (allow !== origin) throw fail(`preflight Access-Control-Allow-Origin ${allow}`);
      if (withCredentials && preflight.headers.get('access-control-allow-credentials') !== 'true') {
        throw fail('preflight without Access-Control-Allow-Credentials');
      }
      const methods = list(preflight.headers.get('access-control-allow-methods'));
      if (!['GET', 'HEAD', 'POST'].includes(request.method) && !methods.includes(request.method.toLowerCase())) {
        throw fail(`method ${request.method} not in ${methods}`);
      }
      const headers = list(preflight.headers.get('access-control-allow-headers'));
      // `*` is a wildcard only without credentials, and never covers Authorization.
      const wildcard = headers.includes('*') && !withCredentials;
      const missing = unsafe.filter((h) => !headers.includes(h) && !(wildcard && h !== 'authorization'));
      if (missing.length > 0) throw fail(`headers ${missing} not in ${headers}`);
    }
    const headers = new Headers(request.headers);
    headers.set('origin', origin);
    if (withCredentials && state.cookies.size > 0) {
      headers.set('cookie', [...state.cookies].map(([name, value]) => `${name}=${value}`).join('; '));
    }
    const bearer = /^Bearer (.+)$/.exec(headers.get('authorization') ?? '');
    if (bearer) state.lastBearer = bearer[1];
    const response = await realFetch(request.url, { method: request.method, headers, body: init.body });
    const allow = response.headers.get('access-control-allow-origin');
    if (allow !== origin && (withCredentials || allow !== '*')) throw fail(`Access-Control-Allow-Origin ${allow}`);
    if (withCredentials) {
      if (response.headers.get('access-control-allow-credentials') !== 'true') {
        throw fail('no Access-Control-Allow-Credentials on a credentialed request');
      }
      for (const cookie of response.headers.getSetCookie()) {
        const [pair, ...attributes] = cookie.split(';').map((part) => part.trim());
        const [name, value] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
        const expired =
          value === '' ||
          attributes.some((a) => /^max-age=(0|-)/i.test(a)) ||
          attributes.some((a) => /^expires=/i.test(a) && Date.parse(a.slice(8)) <= Date.now());
        if (expired) state.cookies.delete(name);
        else state.cookies.set(name, value);
      }
    }
    return response;
  };
  return {
    get cookies() {
      return state.cookies;
    },
    get lastBearer() {
      return state.lastBearer;
    },
  };
}

/** The request's header names that are not CORS-safelisted, lower case, sorted. */
function unsafeHeaders(headers) {
  const simpleTypes = ['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain'];
  return [...headers.keys()]
    .filter((name) => {
      if (['accept', 'accept-language', 'content-language'].includes(name)) return false;
      if (name === 'content-type') return !simpleTypes.includes(headers.get(name).split(';')[0].trim().toLowerCase());
      return true;
    })
    .sort();
}

function list(value) {
  return (value ?? '')
    .split(',')
    .map((item) => item.trim().toLowerCase())
    .filter(Boolean);
}

finish();
