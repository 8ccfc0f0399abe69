// Express middleware that lets through only requests carrying a valid Latch access token.
import { createRemoteJWKSet, errors, jwtVerify } from 'jose';

// Latch's public URL (LATCH_PUBLIC_URL): the `iss` of its tokens.
const LATCH_URL = process.env.LATCH_URL ?? 'https://auth.example.com';
// The `aud` of its tokens: the public URL too, unless Latch sets LATCH_TOKEN_AUDIENCE.
const AUDIENCE = process.env.LATCH_AUDIENCE ?? LATCH_URL;

// Fetched on first use and cached; fetched again when a token names a key it has not seen
// (after a key rotation), at most every 30 seconds.
const jwks = createRemoteJWKSet(new URL(`${LATCH_URL}/.well-known/jwks.json`));

function bearerToken(req) {
  const [scheme, token] = (req.get('authorization') ?? '').split(' ');
  return scheme?.toLowerCase() === 'bearer' && token ? token : null;
}

/** 401 unless the request carries a valid access token; its claims go to `req.auth`. */
export async function requireToken(req, res, next) {
  const token = bearerToken(req);
  if (!token) {
    res.set('WWW-Authenticate', 'Bearer').status(401).json({ error: 'missing_token' });
    return;
  }
  try {
    const { payload } = await jwtVerify(token, jwks, { issuer: LATCH_URL, audience: AUDIENCE, typ: 'at+jwt' });
    req.auth = payload;
  } catch (error) {
    // Latch unreachable or too slow: an outage (500), not the client's fault.
    if (!(error instanceof errors.JOSEError) || error instanceof errors.JWKSTimeout) throw error;
    res.set('WWW-Authenticate', 'Bearer error="invalid_token"').status(401).json({ error: 'invalid_token' });
    return;
  }
  next();
}

/** 403 unless the token was granted every one of `scopes` (use after `requireToken`). */
export function requireScope(...scopes) {
  return (req, res, next) => {
    const granted = new Set((req.auth.scope ?? '').split(' '));
    if (!scopes.every((scope) => granted.has(scope))) {
      res
        .set('WWW-Authenticate', `Bearer error="insufficient_scope", scope="${scopes.join(' ')}"`)
        .status(403)
        .json({ error: 'insufficient_scope' });
      return;
    }
    next();
  };
}
