// Latch against node's `jose` with its default settings: a default access token
// verifies through `createRemoteJWKSet` + `jwtVerify` (issuer, audience, typ at+jwt),
// and a forged token or one meant for another audience does not.
//
// Environment: LATCH_URL (a running Latch), LATCH_USER and LATCH_PASSWORD (a
// registered user). Reports through report.mjs.

import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { check, finish } from './report.mjs';

const url = process.env.LATCH_URL.replace(/\/$/, '');
const joseDir = import.meta.resolve('jose').replace(/(\/node_modules\/jose\/).*$/, '$1');
const jose = JSON.parse(readFileSync(new URL('package.json', joseDir)));
const library = `jose ${jose.version} (node ${process.versions.node})`;

async function refused(promise, what) {
  try {
    await promise;
  } catch {
    return;
  }
  throw new Error(`accepted ${what}`);
}

function forged(token) {
  const [header, payload, signature] = token.split('.');
  const claims = JSON.parse(Buffer.from(payload, 'base64url'));
  claims.sub = '00000000-0000-0000-0000-000000000000';
  return [header, Buffer.from(JSON.stringify(claims)).toString('base64url'), signature].join('.');
}

const discovery = await (await fetch(`${url}/.well-known/openid-configuration`)).json();
const issuer = discovery.issuer;
// Latch's default audience is its public URL, which is also the issuer.
const audience = process.env.LATCH_AUDIENCE ?? issuer;
const response = await fetch(discovery.token_endpoint, {
  method: 'POST',
  body: new URLSearchParams({
    grant_type: 'password',
    username: process.env.LATCH_USER,
    password: process.env.LATCH_PASSWORD,
  }),
});
if (!response.ok) throw new Error(`/token answered ${response.status}: ${await response.text()}`);
const token = (await response.json()).access_token;
const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri));

await check(library, "createRemoteJWKSet + jwtVerify (iss, aud, typ 'at+jwt')", async () => {
  const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer, audience, typ: 'at+jwt' });
  if (!payload.sub || protectedHeader.typ !== 'at+jwt') throw new Error(`claims ${JSON.stringify(payload)}`);
});

await check(library, 'refuses forged token and other audience', async () => {
  await refused(jwtVerify(forged(token), jwks, { issuer, audience, typ: 'at+jwt' }), 'a forged token');
  await refused(
    jwtVerify(token, jwks, { issuer, audience: 'https://another-api.example', typ: 'at+jwt' }),
    'another audience',
  );
});

finish();
