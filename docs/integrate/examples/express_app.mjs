// An Express API whose routes need a Latch access token.
import { fileURLToPath } from 'node:url';
import express from 'express';
import { requireScope, requireToken } from './express_auth.mjs';
import { requireActiveToken } from './express_introspect.mjs';

export const app = express();

// Any valid token: the user is `req.auth.sub`.
app.get('/api/me', requireToken, (req, res) => {
  res.json({ user: req.auth.sub, scope: req.auth.scope });
});

// Only tokens granted the `email` scope.
app.get('/api/newsletter', requireToken, requireScope('email'), (req, res) => {
  res.json({ subscribed: req.auth.sub });
});

// Where a logged-out session must be refused at once, ask Latch.
app.post('/api/transfers', requireActiveToken, (req, res) => {
  res.status(201).json({ by: req.auth.username });
});

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  app.listen(3000, () => console.log('listening on http://localhost:3000'));
}
