//! A minimal HTTP/1.1 client for the few requests the benchmark makes itself (health
//! check, one login for a bearer token, checks that a script's request works). The
//! load itself always comes from wrk.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// A response: status and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the whole
/// response. `content_type` is sent with a non-empty body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: &str,
) -> anyhow::Result<Response> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).with_context(|| format!("reading the answer to {method} {path}"))?;
    parse(&String::from_utf8_lossy(&raw))
}

fn parse(raw: &str) -> anyhow::Result<Response> {
    let (head, body) = raw.split_once("\r\n\r\n").context("response without a header end")?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line in `{head}`"))?;
    if head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked")) {
        bail!("chunked responses are not supported by this client");
    }
    Ok(Response { status, body: body.to_owned() })
}

/// Tokens from a successful `POST /token`.
#[derive(Debug, serde::Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Logs in with the password grant.
pub fn login(addr: SocketAddr, username: &str, password: &str) -> anyhow::Result<TokenPair> {
    let body = format!("grant_type=password&username={username}&password={password}");
    let res = request(addr, "POST", "/token", &[], FORM, &body)?;
    if res.status != 200 {
        bail!("login as {username} answered {}: {}", res.status, res.body);
    }
    serde_json::from_str(&res.body).with_context(|| format!("token response `{}`", res.body))
}

/// Presents a refresh token.
pub fn refresh(addr: SocketAddr, refresh_token: &str) -> anyhow::Result<TokenPair> {
    let body = format!("grant_type=refresh_token&refresh_token={refresh_token}");
    let res = request(addr, "POST", "/token", &[], FORM, &body)?;
    if res.status != 200 {
        bail!("refresh answered {}: {}", res.status, res.body);
    }
    serde_json::from_str(&res.body).with_context(|| format!("token response `{}`", res.body))
}

/// `GET path` with a bearer token; fails unless 200.
pub fn get_with_bearer(addr: SocketAddr, path: &str, token: &str) -> anyhow::Result<String> {
    let authorization = format!("Bearer {token}");
    let res = request(addr, "GET", path, &[("Authorization", &authorization)], FORM, "")?;
    if res.status != 200 {
        bail!("GET {path} answered {}: {}", res.status, res.body);
    }
    Ok(res.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_response() {
        let r = parse("HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_str()), (201, "{}"));
        assert!(parse("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n").is_err());
        assert!(parse("garbage").is_err());
    }
}
