// Asking Latch whether a token is still good (RFC 7662 introspection): a logout shows at
// once, at the price of one request to Latch per call. Needs a confidential client:
//   latch client create --name my-api --confidential --json
const LATCH_URL = process.env.LATCH_URL ?? 'https://auth.example.com';

/** 401 unless Latch says the bearer token is active; its answer goes to `req.auth`. */
export async function requireActiveToken(req, res, next) {
  const [scheme, token] = (req.get('authorization') ?? '').split(' ');
  if (scheme?.toLowerCase() !== 'bearer' || !token) {
    res.set('WWW-Authenticate', 'Bearer').status(401).json({ error: 'missing_token' });
    return;
  }
  // client_secret_basic: id and secret form-encoded, then joined with ':' in Basic.
  const { LATCH_CLIENT_ID: id, LATCH_CLIENT_SECRET: secret } = process.env;
  const basic = Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64');
  const response = await fetch(`${LATCH_URL}/introspect`, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}` },
    body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
  });
  if (!response.ok) throw new Error(`introspection failed: ${response.status}`);
  const answer = await response.json();
  if (!answer.active) {
    res.set('WWW-Authenticate', 'Bearer error="invalid_token"').status(401).json({ error: 'invalid_token' });
    return;
  }
  req.auth = answer;
  next();
}
