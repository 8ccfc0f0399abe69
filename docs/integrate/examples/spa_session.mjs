// The alternative to tokens in memory: Latch's session cookie (HttpOnly, so no script can
// read it), sent by the browser with `credentials: 'include'`. It survives reloads, but
// browsers send it only when the app and Latch are the same site
// (app.example.com and auth.example.com), since it is SameSite=Lax.

export async function signIn(latchUrl, username, password) {
  const response = await fetch(`${latchUrl}/sessions`, {
    method: 'POST',
    credentials: 'include',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (!response.ok) throw new Error(`sign-in refused: ${response.status}`);
  return response.json();
}

/** The signed-in user, or null. */
export async function currentUser(latchUrl) {
  const response = await fetch(`${latchUrl}/users/me`, { credentials: 'include' });
  if (response.status === 401) return null;
  if (!response.ok) throw new Error(`/users/me answered ${response.status}`);
  return response.json();
}

export async function signOut(latchUrl) {
  await fetch(`${latchUrl}/sessions`, { method: 'DELETE', credentials: 'include' });
}
