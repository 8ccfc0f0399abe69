//! The wrk scripts of each scenario, generated as Lua source. Every script works with
//! any number of wrk threads (`setup` numbers them), though the benchmark uses one.
//!
//! Static requests (`me`, the bare ceiling) define no `request` function, so wrk sends
//! one prebuilt request and the client costs as little as possible.

use std::fmt::Write as _;

/// Numbers the threads: each gets a global `tid` (0, 1, …) before its `init`.
const SETUP: &str = r#"
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
"#;

/// A Lua string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\{}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Lua array literal of strings.
fn array(items: &[String]) -> String {
    let mut out = String::from("{\n");
    for item in items {
        out.push_str("  ");
        out.push_str(&quote(item));
        out.push_str(",\n");
    }
    out.push('}');
    out
}

/// `POST /users` (JSON) with a new username on every request: `<prefix><thread>n<counter>`.
/// The prefix must be unique to the run.
pub fn register(prefix: &str, password: &str) -> String {
    format!(
        r#"-- register: a new user on every request.
{SETUP}
local prefix = {prefix}
local password = {password}
local headers = {{ ["Content-Type"] = "application/json" }}
local counter = 0
function request()
  counter = counter + 1
  local name = prefix .. tid .. "n" .. counter
  local body = '{{"username":"' .. name .. '","email":"' .. name .. '@bench.example","password":"' .. password .. '"}}'
  return wrk.format("POST", "/users", headers, body)
end
"#,
        prefix = quote(prefix),
        password = quote(password),
    )
}

/// `POST /token` password grant (form) for a user picked at random from `usernames`.
pub fn login(usernames: &[String], password: &str) -> String {
    format!(
        r#"-- login: password grant for a random user of a fixed set.
{SETUP}
local usernames = {usernames}
local password = {password}
local requests = {{}}
function init(args)
  math.randomseed(os.time() * 1000 + tid)
  local headers = {{ ["Content-Type"] = "application/x-www-form-urlencoded" }}
  for i, name in ipairs(usernames) do
    requests[i] = wrk.format("POST", "/token", headers, "grant_type=password&username=" .. name .. "&password=" .. password)
  end
end
function request()
  return requests[math.random(#requests)]
end
"#,
        usernames = array(usernames),
        password = quote(password),
    )
}

/// `GET <path>` with `Authorization: Bearer <token>`, one static request.
pub fn bearer_get(path: &str, token: &str) -> String {
    format!(
        r#"-- GET {path} with a fixed bearer token (static request).
wrk.method = "GET"
wrk.path = {path_literal}
wrk.headers["Authorization"] = {authorization}
"#,
        path_literal = quote(path),
        authorization = quote(&format!("Bearer {token}")),
    )
}

/// `GET` of a path picked at random from `paths` for each request, with
/// `Authorization: Bearer <token>`.
pub fn bearer_get_any(paths: &[String], token: &str) -> String {
    format!(
        r#"-- GET a random path of a fixed set with a fixed bearer token.
{SETUP}
local paths = {paths}
local requests = {{}}
function init(args)
  math.randomseed(os.time() * 1000 + tid)
  local headers = {{ ["Authorization"] = {authorization} }}
  for i, path in ipairs(paths) do
    requests[i] = wrk.format("GET", path, headers)
  end
end
function request()
  return requests[math.random(#requests)]
end
"#,
        paths = array(paths),
        authorization = quote(&format!("Bearer {token}")),
    )
}

/// `GET <path>` as a browser's first visit: no cookie, so every answer makes a new
/// CSRF token (static request).
pub fn page_get(path: &str) -> String {
    format!(
        r#"-- GET {path} without cookies, as a first visit (static request).
wrk.method = "GET"
wrk.path = {path_literal}
wrk.headers["Accept"] = "text/html"
"#,
        path_literal = quote(path),
    )
}

/// `GET <path>` with a fixed `Cookie` header (static request): a signed-in browser.
pub fn cookie_get(path: &str, cookie: &str) -> String {
    format!(
        r#"-- GET {path} with a browser's session cookie (static request).
wrk.method = "GET"
wrk.path = {path_literal}
wrk.headers["Cookie"] = {cookie}
"#,
        path_literal = quote(path),
        cookie = quote(cookie),
    )
}

/// `POST /token` with `grant_type=authorization_code`: every code of `seed` presented
/// exactly once, by the public client `client_id` with the PKCE `verifier`.
pub fn code_exchange(seed: &[String], threads: u32, client_id: &str, redirect_uri: &str, verifier: &str) -> String {
    let rest: String =
        form_urlencoded_pairs(&[("redirect_uri", redirect_uri), ("client_id", client_id), ("code_verifier", verifier)]);
    let steps: Vec<String> = seed.iter().map(|code| format!("code={code}{rest}")).collect();
    single_use_grant(&steps, threads, "authorization_code")
}

/// `POST /token` with `grant_type` (form-encoded already): every set of form fields of
/// `seed` (`mfa_token=…&otp=…`, `ceremony=…&credential=…`) presented exactly once.
pub fn single_use_grant(seed: &[String], threads: u32, grant_type: &str) -> String {
    format!(
        r#"-- every entry of the seed is presented exactly once: each works once.
{SETUP}
local seed = {seed}
local nthreads = {threads}
local grant = {grant}
local headers = {{ ["Content-Type"] = "application/x-www-form-urlencoded" }}
local next_step = 0
function init(args)
  next_step = tid + 1
end
function request()
  local step = seed[next_step] or "exhausted=1"
  next_step = next_step + nthreads
  return wrk.format("POST", "/token", headers, "grant_type=" .. grant .. "&" .. step)
end
"#,
        seed = array(seed),
        grant = quote(grant_type),
    )
}

/// `&k=v…`, percent-encoded as a form.
fn form_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        out.push('&');
        out.push_str(k);
        out.push('=');
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// `POST path` with a fixed form body and `Authorization` header (static request).
pub fn form_post(path: &str, authorization: &str, body: &str) -> String {
    format!(
        r#"-- POST {path} with a fixed form body (static request).
wrk.method = "POST"
wrk.path = {path_literal}
wrk.body = {body}
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = {authorization}
"#,
        path_literal = quote(path),
        body = quote(body),
        authorization = quote(authorization),
    )
}

/// `POST /token` refresh grant (form). Each request presents an unused refresh token:
/// first those of `seed` (created through the store; thread `tid` takes every
/// `threads`-th), then the ones the server returns, since rotation kills each token
/// after one use. A connection has at most one request outstanding, so the queue
/// only runs dry if responses are lost; then the request presents an invalid token
/// and is counted as a non-2xx response.
pub fn refresh(seed: &[String], threads: u32) -> String {
    format!(
        r#"-- refresh: every refresh token is presented exactly once.
{SETUP}
local seed = {seed}
local nthreads = {threads}
local headers = {{ ["Content-Type"] = "application/x-www-form-urlencoded" }}
local queue, head, tail = {{}}, 1, 0
local function push(token)
  tail = tail + 1
  queue[tail] = token
end
local function pop()
  if head > tail then return nil end
  local token = queue[head]
  queue[head] = nil
  head = head + 1
  return token
end
function init(args)
  for i = tid + 1, #seed, nthreads do push(seed[i]) end
end
function request()
  local token = pop() or "exhausted"
  return wrk.format("POST", "/token", headers, "grant_type=refresh_token&refresh_token=" .. token)
end
function response(status, _headers, body)
  if status == 200 then
    local token = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
    if token then push(token) end
  end
end
"#,
        seed = array(seed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }

    #[test]
    fn scripts_carry_their_data() {
        let s = login(&["user1".to_owned(), "user2".to_owned()], "pw");
        assert!(s.contains("\"user1\",") && s.contains("local password = \"pw\""));
        let s = refresh(&["tok".to_owned()], 1);
        assert!(s.contains("\"tok\",") && s.contains("local nthreads = 1"));
        let s = bearer_get("/users/me", "abc");
        assert!(s.contains("\"Bearer abc\""));
        let s = register("rx", "pw");
        assert!(s.contains("local prefix = \"rx\""));
    }
}
