//! The markdown report: one table of scenarios (with the two ceilings), one table of
//! the figures the targets of issue 5 are stated in.

use std::fmt::Write as _;
use std::time::Duration;

use crate::wrk::Report;

/// Everything one run measured, and how.
pub struct Results {
    /// When the run started, `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    pub command: String,
    /// CPU model and core count.
    pub machine: String,
    /// Filesystem type of the data directory (fsync cost depends on it).
    pub filesystem: String,
    pub wrk_version: String,
    /// `(server core, client core)`.
    pub cores: Option<(usize, usize)>,
    pub users: u64,
    pub preload: Duration,
    pub duration: Duration,
    pub warmup: Duration,
    pub connections: u64,
    pub rss_connections: u64,
    /// Argon2id hashes per second, one core.
    pub hash_ceiling: f64,
    pub bare: Report,
    pub register: Report,
    pub login: Report,
    /// Login with the abuse limits on (every other scenario runs with them off).
    pub login_limits: Report,
    pub me: Report,
    pub refresh: Report,
    /// `GET /authorize` of a signed-in browser for a first-party app: a redirect with a code.
    pub authorize: Report,
    /// `POST /token` with `grant_type=authorization_code` (PKCE, an ID token).
    pub code_exchange: Report,
    /// `POST /token` with `grant_type=urn:latch:grant-type:mfa`: a second step with an
    /// app's code or a recovery code.
    pub mfa_grant: Report,
    /// `POST /token` with `grant_type=urn:latch:grant-type:passkey`: a sign-in with a
    /// passkey alone (a discoverable credential's assertion).
    pub passkey_sign_in: Report,
    /// `POST /introspect` of a live access token by a confidential client.
    pub introspect: Report,
    /// `GET /login`, the sign-in page, on a first visit.
    pub login_page: Report,
    /// `GET /admin/users?q=<start of a username>` by an admin.
    pub admin_search: Report,
    pub flood_login: Report,
    pub flood_me: Report,
    pub crowd_login: Report,
    /// Highest `VmRSS` sampled during the many-connection login run, KiB.
    pub peak_rss_kib: u64,
    /// `VmHWM` (lifetime peak) read just before the server was stopped, KiB.
    pub hwm_kib: u64,
    /// `VmRSS` just before the many-connection login run, KiB.
    pub rss_before_kib: u64,
    /// Login and me measured again after growing the database (`--compare-users`).
    pub scale: Option<Scale>,
}

/// The second measurement of login and me, on a larger database.
pub struct Scale {
    pub users: u64,
    /// Time to add the users.
    pub preload: Duration,
    pub login: Report,
    pub me: Report,
    pub admin_search: Report,
}

/// `p50` at the larger count relative to the smaller, as a signed change.
fn change(small: Duration, large: Duration) -> f64 {
    ratio(large.as_secs_f64(), small.as_secs_f64()) - 1.0
}

fn rate(r: f64) -> String {
    if r < 100.0 { format!("{r:.1}") } else { format!("{r:.0}") }
}

fn latency(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

impl Results {
    pub fn login_ratio(&self) -> f64 {
        ratio(self.login.ok_per_sec(), self.hash_ceiling)
    }

    pub fn register_ratio(&self) -> f64 {
        ratio(self.register.ok_per_sec(), self.hash_ceiling)
    }

    pub fn me_ratio(&self) -> f64 {
        ratio(self.me.ok_per_sec(), self.bare.ok_per_sec())
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let secs = |d: Duration| format!("{} s", d.as_secs());
        let pinning = match self.cores {
            Some((server, client)) => format!("servers pinned to core {server}, wrk (one thread) to core {client}"),
            None => "no core pinning".to_owned(),
        };
        let warmup = if self.warmup.is_zero() {
            "without warm-up".to_owned()
        } else {
            format!("after {} of warm-up", secs(self.warmup))
        };
        let _ = writeln!(out, "Run {} with `{}`", self.date, self.command);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} · {} · {} · SQLite on {} · {} users preloaded in {:.2} s · each scenario measured for {} {}",
            self.machine,
            pinning,
            self.wrk_version,
            self.filesystem,
            self.users,
            self.preload.as_secs_f64(),
            secs(self.duration),
            warmup,
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "| scenario | connections | req/s | p50 | p99 | errors |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
        let _ = writeln!(out, "| ceiling: Argon2id hashes, one core | – | {} | – | – | – |", rate(self.hash_ceiling));
        let rows: [(&str, u64, &Report); 16] = [
            ("ceiling: bare axum `GET /users/me`", self.connections, &self.bare),
            ("register (`POST /users`)", self.connections, &self.register),
            ("login (`POST /token` password grant, 100 users)", self.connections, &self.login),
            ("login, abuse limits on", self.connections, &self.login_limits),
            ("me (`GET /users/me`, bearer token)", self.connections, &self.me),
            ("refresh (`POST /token` refresh grant)", self.connections, &self.refresh),
            ("authorize (`GET /authorize`, signed in, answered with a redirect)", self.connections, &self.authorize),
            ("code exchange (`POST /token` authorization code, PKCE, ID token)", self.connections, &self.code_exchange),
            ("second factor (`POST /token` mfa grant, app or recovery code)", self.connections, &self.mfa_grant),
            ("passkey sign-in (`POST /token` passkey grant)", self.connections, &self.passkey_sign_in),
            ("introspect (`POST /introspect`, live access token)", self.connections, &self.introspect),
            ("login page (`GET /login`, first visit)", self.connections, &self.login_page),
            ("admin search (`GET /admin/users?q=…`, 100 prefixes)", self.connections, &self.admin_search),
            ("login flood, alongside the next row", self.connections, &self.flood_login),
            ("me during the login flood", self.connections, &self.flood_me),
            ("login", self.rss_connections, &self.crowd_login),
        ];
        for (name, connections, r) in rows {
            let _ = writeln!(
                out,
                "| {name} | {connections} | {} | {} | {} | {} |",
                rate(r.ok_per_sec()),
                latency(r.p50),
                latency(r.p99),
                r.errors_text()
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "req/s counts successful responses only; errors are responses of status 400 or more, \
             and wrk's socket errors and timeouts (10 s)."
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "| figure | measured | target | met |");
        let _ = writeln!(out, "|---|---:|---:|---|");
        let (login, register, me) = (self.login_ratio(), self.register_ratio(), self.me_ratio());
        let _ = writeln!(out, "| login / hash ceiling | {login:.3} | ≥ 0.90 | {} |", met(login >= 0.90));
        let _ = writeln!(out, "| register / hash ceiling | {register:.3} | ≥ 0.80 | {} |", met(register >= 0.80));
        let limited = ratio(self.login_limits.ok_per_sec(), self.hash_ceiling);
        let _ = writeln!(
            out,
            "| login with limits on / hash ceiling | {limited:.3} ({:+.1} % vs limits off) | ≥ 0.90 | {} |",
            (ratio(limited, login) - 1.0) * 100.0,
            met(limited >= 0.90)
        );
        let _ = writeln!(out, "| me / bare-axum ceiling | {me:.3} | ≥ 0.50 | {} |", met(me >= 0.50));
        let introspect = ratio(self.introspect.ok_per_sec(), self.bare.ok_per_sec());
        let _ = writeln!(
            out,
            "| introspect / bare-axum ceiling | {introspect:.3} | ≥ 0.50 | {} |",
            met(introspect >= 0.50)
        );
        let exchange = ratio(self.code_exchange.ok_per_sec(), self.refresh.ok_per_sec());
        let _ = writeln!(out, "| code exchange / refresh grant | {exchange:.3} | ≥ 0.50 | {} |", met(exchange >= 0.50));
        let mfa = ratio(self.mfa_grant.ok_per_sec(), self.refresh.ok_per_sec());
        let _ = writeln!(out, "| mfa grant / refresh grant | {mfa:.3} | ≥ 0.50 | {} |", met(mfa >= 0.50));
        let passkey = ratio(self.passkey_sign_in.ok_per_sec(), self.refresh.ok_per_sec());
        let _ = writeln!(out, "| passkey sign-in / refresh grant | {passkey:.3} | ≥ 0.50 | {} |", met(passkey >= 0.50));
        let authorize = ratio(self.authorize.ok_per_sec(), self.bare.ok_per_sec());
        let _ = writeln!(
            out,
            "| authorize (signed in) / bare-axum ceiling | {authorize:.3} | ≥ 0.30 | {} |",
            met(authorize >= 0.30)
        );
        let page = ratio(self.login_page.ok_per_sec(), self.bare.ok_per_sec());
        let _ = writeln!(out, "| login page / bare-axum ceiling | {page:.3} | ≥ 0.30 | {} |", met(page >= 0.30));
        let flood = ratio(self.flood_login.ok_per_sec(), self.hash_ceiling);
        let _ =
            writeln!(out, "| login during the flood / hash ceiling | {flood:.3} | ≥ 0.50 | {} |", met(flood >= 0.50));
        let p99 = self.flood_me.p99;
        let _ = writeln!(
            out,
            "| me p99 during the login flood | {} | ≤ 10 ms | {} |",
            latency(p99),
            met(p99 <= Duration::from_millis(10))
        );
        let _ = writeln!(
            out,
            "| peak RSS, login at {} connections | {} (VmHWM {}; {} before the run) | ≤ 150 MiB | {} |",
            self.rss_connections,
            mib(self.peak_rss_kib),
            mib(self.hwm_kib),
            mib(self.rss_before_kib),
            met(self.peak_rss_kib.max(self.hwm_kib) <= 150 * 1024)
        );
        if let Some(scale) = &self.scale {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "Then {} users in all (the other {} added in {:.2} s), login and me measured again on fresh servers:",
                scale.users,
                scale.users - self.users,
                scale.preload.as_secs_f64()
            );
            let _ = writeln!(out);
            let _ = writeln!(out, "| p50 | {} users | {} users | change | within 20 % |", self.users, scale.users);
            let _ = writeln!(out, "|---|---:|---:|---:|---|");
            for (name, small, large) in [
                ("login", &self.login, &scale.login),
                ("me", &self.me, &scale.me),
                ("admin search", &self.admin_search, &scale.admin_search),
            ] {
                let change = change(small.p50, large.p50);
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} | {:+.0} % | {} |",
                    latency(small.p50),
                    latency(large.p50),
                    change * 100.0,
                    met(change.abs() <= 0.20)
                );
            }
            let _ = writeln!(out);
            let _ = writeln!(out, "| figure | measured | target | met |");
            let _ = writeln!(out, "|---|---:|---:|---|");
            let p50 = scale.admin_search.p50;
            let _ = writeln!(
                out,
                "| admin search p50 at {} users | {} | < 50 ms | {} |",
                scale.users,
                latency(p50),
                met(p50 < Duration::from_millis(50))
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rps: f64, p50_us: u64, p99_us: u64) -> Report {
        Report {
            requests: (rps * 10.0) as u64,
            requests_per_sec: rps,
            p50: Duration::from_micros(p50_us),
            p99: Duration::from_micros(p99_us),
            ..Report::default()
        }
    }

    #[test]
    fn formats_units() {
        assert_eq!(latency(Duration::from_micros(250)), "250 µs");
        assert_eq!(latency(Duration::from_micros(5060)), "5.06 ms");
        assert_eq!(latency(Duration::from_millis(1500)), "1.50 s");
        assert_eq!(rate(27.345), "27.3");
        assert_eq!(rate(41234.4), "41234");
        assert_eq!(mib(150 * 1024), "150.0 MiB");
    }

    #[test]
    fn tables_hold_ratios_and_verdicts() {
        let results = Results {
            date: "2026-01-01 00:00 UTC".into(),
            command: "latch-bench".into(),
            machine: "cpu, 2 cores".into(),
            filesystem: "ext4".into(),
            wrk_version: "wrk 4.1.0".into(),
            cores: Some((0, 1)),
            users: 1000,
            preload: Duration::from_millis(400),
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            connections: 16,
            rss_connections: 1000,
            hash_ceiling: 30.0,
            bare: report(40_000.0, 300, 900),
            register: report(24.0, 600_000, 700_000),
            login: report(28.5, 500_000, 600_000),
            login_limits: report(27.9, 500_000, 600_000),
            me: report(10_000.0, 1_000, 4_000),
            refresh: report(900.0, 10_000, 30_000),
            authorize: report(15_000.0, 500, 1500),
            code_exchange: report(600.0, 15_000, 40_000),
            mfa_grant: report(500.0, 15_000, 40_000),
            passkey_sign_in: report(450.0, 15_000, 40_000),
            introspect: report(30_000.0, 300, 900),
            login_page: report(20_000.0, 400, 1200),
            admin_search: report(5_000.0, 3_000, 9_000),
            flood_login: report(28.0, 500_000, 600_000),
            flood_me: report(5_000.0, 2_000, 12_000),
            crowd_login: report(28.0, 2_000_000, 3_000_000),
            peak_rss_kib: 60 * 1024,
            hwm_kib: 61 * 1024,
            rss_before_kib: 20 * 1024,
            scale: Some(Scale {
                users: 1_000_000,
                preload: Duration::from_secs(4),
                login: report(28.0, 550_000, 600_000),
                me: report(9_000.0, 1_300, 4_000),
                admin_search: report(4_000.0, 4_000, 12_000),
            }),
        };
        let md = results.markdown();
        assert!(md.contains("| p50 | 1000 users | 1000000 users | change | within 20 % |"), "{md}");
        assert!(md.contains("| login | 500.00 ms | 550.00 ms | +10 % | yes |"), "{md}");
        assert!(md.contains("| me | 1.00 ms | 1.30 ms | +30 % | **no** |"), "{md}");
        assert!(md.contains("| admin search p50 at 1000000 users | 4.00 ms | < 50 ms | yes |"), "{md}");
        assert!(md.contains("| login / hash ceiling | 0.950 | ≥ 0.90 | yes |"), "{md}");
        assert!(md.contains("| register / hash ceiling | 0.800 | ≥ 0.80 | yes |"), "{md}");
        assert!(md.contains("| me / bare-axum ceiling | 0.250 | ≥ 0.50 | **no** |"), "{md}");
        assert!(md.contains("| me p99 during the login flood | 12.00 ms | ≤ 10 ms | **no** |"), "{md}");
        assert!(
            md.contains("| login with limits on / hash ceiling | 0.930 (-2.1 % vs limits off) | ≥ 0.90 | yes |"),
            "{md}"
        );
        assert!(md.contains("| login during the flood / hash ceiling | 0.933 | ≥ 0.50 | yes |"), "{md}");
        assert!(md.contains("| code exchange / refresh grant | 0.667 | ≥ 0.50 | yes |"), "{md}");
        assert!(md.contains("| mfa grant / refresh grant | 0.556 | ≥ 0.50 | yes |"), "{md}");
        assert!(md.contains("| passkey sign-in / refresh grant | 0.500 | ≥ 0.50 | yes |"), "{md}");
        assert!(md.contains("| authorize (signed in) / bare-axum ceiling | 0.375 | ≥ 0.30 | yes |"), "{md}");
        assert!(md.contains("| login | 1000 | 28.0 |"), "{md}");
        assert!(md.contains("60.0 MiB (VmHWM 61.0 MiB; 20.0 MiB before the run) | ≤ 150 MiB | yes |"), "{md}");
    }
}
