// A single-page app on oidc-client-ts (its browser bundle's global `oidc`), signed in
// through Latch by tests/api/browser_oidc.rs. `/config.js` sets `window.LATCH`:
// `{ authority, client_id }`. Everything it does shows on the page: `#status`,
// `#email`, `#renewed`, and `#error` for any failure.
"use strict";

(function () {
  const here = window.location.origin;
  const manager = new oidc.UserManager({
    authority: window.LATCH.authority,
    client_id: window.LATCH.client_id,
    redirect_uri: here + "/callback.html",
    post_logout_redirect_uri: here + "/",
    response_type: "code",
    scope: "openid profile email offline_access",
    automaticSilentRenew: false,
    loadUserInfo: true,
  });

  function show(id, text) {
    document.getElementById(id).textContent = text;
  }

  function fail(what) {
    return function (e) {
      const detail = e && e.message ? e.message : String(e);
      const extra = e && e.error_description ? " (" + e.error + ": " + e.error_description + ")" : "";
      show("error", what + " failed: " + detail + extra);
    };
  }

  if (document.body.dataset.page === "callback") {
    manager.signinRedirectCallback().then(function () {
      window.location.replace("/");
    }, fail("sign-in callback"));
    return;
  }

  function render(user) {
    if (user && !user.expired) {
      show("status", "signed in as " + user.profile.preferred_username);
      show("email", user.profile.email || "");
    } else {
      show("status", "signed out");
      show("email", "");
    }
  }

  // Back from Latch's end_session: `?state=…` ends the sign-out.
  const back = new URLSearchParams(window.location.search);
  const ready = back.has("state")
    ? manager.signoutRedirectCallback().then(function () {
        window.history.replaceState(null, "", "/");
      })
    : Promise.resolve();
  ready.then(function () {
    return manager.getUser();
  }).then(render, fail("loading the user"));

  document.getElementById("signin").addEventListener("click", function () {
    show("error", "");
    manager.signinRedirect().catch(fail("sign-in"));
  });
  document.getElementById("renew").addEventListener("click", function () {
    show("renewed", "");
    show("error", "");
    manager.signinSilent().then(function (user) {
      render(user);
      show("renewed", "renewed, expires at " + new Date(user.expires_at * 1000).toISOString());
    }, fail("renewal"));
  });
  document.getElementById("signout").addEventListener("click", function () {
    show("error", "");
    manager.signoutRedirect().catch(fail("sign-out"));
  });
})();
