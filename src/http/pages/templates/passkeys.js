// Passkeys on Latch's pages: adding one on /account, signing in with one on /login (a
// button, and the browser's autofill), and the second step on /login/mfa. Everything
// here enhances a page that works without it: without script or WebAuthn the buttons
// stay hidden and passwords and codes work as before.
"use strict";
(() => {
  const PK = window.PublicKeyCredential;
  if (!PK || !PK.parseCreationOptionsFromJSON || !PK.parseRequestOptionsFromJSON) return;

  // webauthn-rs writes absent options as null, which the parsers refuse.
  const clean = (value) => {
    if (Array.isArray(value)) return value.map(clean);
    if (value && typeof value === "object") {
      return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, clean(v)]));
    }
    return value;
  };
  const post = async (path, body) => {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body || {}),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const field = answer.errors && answer.errors[0];
      throw new Error(field ? `${field.field} ${field.message}` : answer.detail || "The passkey was not accepted.");
    }
    return answer;
  };
  const show = (id, message) => {
    const out = document.getElementById(id);
    if (out) {
      out.textContent = message;
      out.hidden = false;
    }
  };
  const onwards = () => {
    const field = document.querySelector('input[name="return_to"]');
    window.location.assign((field && field.value) || "/account");
  };

  // Adding a passkey on the account page.
  const add = document.getElementById("passkey-add");
  if (add) {
    add.hidden = false;
    add.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = add.querySelector('[name="name"]').value.trim() || "Passkey";
      const password = add.querySelector('[name="password"]');
      try {
        const begun = await post("/users/me/mfa/passkeys/options", { password: password.value });
        password.value = "";
        const options = PK.parseCreationOptionsFromJSON(clean(begun.options.publicKey));
        const credential = await navigator.credentials.create({ publicKey: options });
        const added = await post("/users/me/mfa/passkeys", {
          ceremony: begun.ceremony,
          name,
          credential: credential.toJSON(),
        });
        if (added.recovery_codes) {
          // The account's first factor: its recovery codes, shown this once.
          const list = document.getElementById("passkey-codes-list");
          for (const code of added.recovery_codes) {
            const item = document.createElement("li");
            const text = document.createElement("code");
            text.textContent = code;
            item.append(text);
            list.append(item);
          }
          document.getElementById("passkey-codes").hidden = false;
          add.hidden = true;
          return;
        }
        window.location.assign("/account?done=passkey");
      } catch (error) {
        show("passkey-add-error", error.name === "NotAllowedError" ? "No passkey was made." : error.message);
      }
    });
  }

  // Signing in with a passkey alone: the button, and the browser's autofill.
  const signIn = document.getElementById("passkey-sign-in");
  if (signIn) {
    let waiting = null;
    const start = async (mediation) => {
      if (waiting) waiting.abort();
      waiting = new AbortController();
      const begun = await post("/passkeys/options");
      const options = PK.parseRequestOptionsFromJSON(clean(begun.options.publicKey));
      const credential = await navigator.credentials.get({ publicKey: options, mediation, signal: waiting.signal });
      await post("/sessions/passkey", { ceremony: begun.ceremony, credential: credential.toJSON() });
      onwards();
    };
    signIn.hidden = false;
    signIn.addEventListener("click", () =>
      start("optional").catch((error) => {
        if (error.name !== "AbortError") {
          show("passkey-error", error.name === "NotAllowedError" ? "No passkey was used." : error.message);
        }
      }),
    );
    if (PK.isConditionalMediationAvailable) {
      PK.isConditionalMediationAvailable().then((available) => {
        if (available) start("conditional").catch(() => {});
      });
    }
  }

  // The second step with a passkey: its answer goes with the page's own form.
  const step = document.getElementById("passkey-step");
  if (step) {
    step.hidden = false;
    step.addEventListener("click", async () => {
      try {
        const options = PK.parseRequestOptionsFromJSON(clean(JSON.parse(step.dataset.options).publicKey));
        const credential = await navigator.credentials.get({ publicKey: options });
        const form = document.getElementById("passkey-step-form");
        form.querySelector('[name="webauthn"]').value = JSON.stringify(credential.toJSON());
        form.submit();
      } catch (error) {
        show("passkey-error", error.name === "NotAllowedError" ? "No passkey was used." : error.message);
      }
    });
  }
})();
