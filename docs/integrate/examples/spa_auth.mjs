// Logging in to Latch from a single-page app on another origin, with `fetch` only.
// The tokens live in this object, in memory: not in localStorage, where any script
// injected into the page could read them. A reload means logging in again (or see the
// cookie session below).

export class LatchAuth {
  #url;
  #clientId;
  #accessToken = null;
  #refreshToken = null;
  #refreshing = null;

  constructor(latchUrl, clientId = 'latch') {
    this.#url = latchUrl;
    this.#clientId = clientId;
  }

  get loggedIn() {
    return this.#accessToken !== null;
  }

  /** Password grant; throws a LatchError (`invalid_grant` for a wrong password). */
  async login(username, password) {
    await this.#token({ grant_type: 'password', username, password });
  }

  /** `fetch` with the access token; on a 401, refreshes once and tries again. */
  async fetch(url, init = {}) {
    const response = await fetch(url, this.#withToken(init));
    if (response.status !== 401 || this.#refreshToken === null) return response;
    await this.refresh();
    return fetch(url, this.#withToken(init));
  }

  /** A new token pair. Concurrent callers share one request: Latch rotates refresh
   *  tokens, and a refresh token presented twice ends the whole session. */
  refresh() {
    if (this.#refreshToken === null) return Promise.reject(new LatchError('login_required'));
    this.#refreshing ??= this.#token({ grant_type: 'refresh_token', refresh_token: this.#refreshToken }).finally(
      () => (this.#refreshing = null),
    );
    return this.#refreshing;
  }

  /** Ends the session at Latch: its refresh token dies and its access tokens are refused. */
  async logout() {
    const [accessToken, refreshToken] = [this.#accessToken, this.#refreshToken];
    this.#accessToken = this.#refreshToken = null;
    if (accessToken !== null) {
      await fetch(`${this.#url}/logout`, { method: 'POST', headers: { authorization: `Bearer ${accessToken}` } });
    }
    // In case the access token had expired: the refresh token ends the session too.
    if (refreshToken !== null) {
      await fetch(`${this.#url}/revoke`, { method: 'POST', body: new URLSearchParams({ token: refreshToken }) });
    }
  }

  #withToken(init) {
    const headers = new Headers(init.headers);
    if (this.#accessToken !== null) headers.set('authorization', `Bearer ${this.#accessToken}`);
    return { ...init, headers };
  }

  async #token(form) {
    const response = await fetch(`${this.#url}/token`, {
      method: 'POST',
      body: new URLSearchParams({ ...form, client_id: this.#clientId }),
    });
    const body = await response.json();
    if (!response.ok) {
      this.#accessToken = this.#refreshToken = null;
      throw new LatchError(body.error, body.error_description);
    }
    this.#accessToken = body.access_token;
    this.#refreshToken = body.refresh_token;
  }
}

export class LatchError extends Error {
  constructor(code, description) {
    super(description ?? code);
    this.code = code;
  }
}
