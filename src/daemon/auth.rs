//! Basic authentication of the HTTP endpoint against the web config's `basic_auth_users`
//! (user → bcrypt hash), as Prometheus exporters do it.
//!
//! bcrypt is slow by design (each cost step doubles it; exporter-toolkit quotes about 70 ms
//! at cost 10), so it never runs on the reactor: verifications go to a blocking thread one
//! at a time (a flood of wrong passwords costs one core, not both), at most [`MAX_WAITING`]
//! are in line (the one running included) and the rest are refused at once as busy. A successful verification is remembered as a keyed digest
//! (HMAC-SHA256 under a random key drawn at start) of the user, the password and the hash it
//! matched, so a Prometheus scraping every 15 s pays bcrypt once, not at every scrape; a
//! changed hash no longer matches its entries. Only successes are remembered, at most
//! [`CACHE_ENTRIES`] of them (the least recently used goes), and a lookup compares the
//! digest with every entry in constant time. A user that does not exist costs the same
//! bcrypt as one that does (its password is checked against a configured hash and refused
//! whatever the result), so timing does not tell which users exist. Passwords longer than
//! bcrypt's 72 bytes are refused, as Go's bcrypt does, rather than cut.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use rustls::crypto::tls13::{Hkdf, OkmBlock};

use crate::util::sync::lock;

/// Successful verifications remembered.
pub const CACHE_ENTRIES: usize = 64;
/// Verifications in line for bcrypt, the running one included; past this, requests are
/// refused as busy.
pub const MAX_WAITING: usize = 16;
/// bcrypt reads at most this many bytes of a password.
const BCRYPT_MAX_PASSWORD: usize = 72;

/// What the endpoint does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No users are configured, or the credentials are right.
    Allowed,
    /// No `Authorization` header.
    NoCredentials,
    /// A wrong user or password, or a header that is not `Basic` credentials.
    BadCredentials,
    /// Too many verifications waiting for bcrypt.
    Busy,
}

/// The basic-auth checker of one endpoint: its cache and its bcrypt turn.
pub struct Auth {
    /// `None` when no random key could be drawn: nothing is cached then.
    key: Option<[u8; 32]>,
    cache: Mutex<Cache>,
    bcrypt: tokio::sync::Semaphore,
    waiting: AtomicUsize,
    /// bcrypt verifications run (to see the cache work).
    verifications: AtomicU64,
}

struct Cache {
    entries: Vec<([u8; 32], u64)>,
    clock: u64,
}

impl Default for Auth {
    fn default() -> Self {
        Auth::new()
    }
}

impl Auth {
    pub fn new() -> Auth {
        let mut key = [0u8; 32];
        let key = rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut key)
            .ok()
            .map(|()| key);
        if key.is_none() {
            tracing::warn!("no random key for the basic-auth cache: every request pays bcrypt");
        }
        Auth {
            key,
            cache: Mutex::new(Cache {
                entries: Vec::with_capacity(CACHE_ENTRIES),
                clock: 0,
            }),
            bcrypt: tokio::sync::Semaphore::new(1),
            waiting: AtomicUsize::new(0),
            verifications: AtomicU64::new(0),
        }
    }

    /// bcrypt verifications run so far.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Check a request's `Authorization` header value against `users` (user → bcrypt
    /// hash; empty: no authentication).
    pub async fn check(
        &self,
        users: &BTreeMap<String, String>,
        authorization: Option<&[u8]>,
    ) -> Outcome {
        let Some(any_hash) = users.values().next() else {
            return Outcome::Allowed;
        };
        let Some(value) = authorization else {
            return Outcome::NoCredentials;
        };
        let Some((user, password)) = parse_basic(value) else {
            return Outcome::BadCredentials;
        };
        if password.len() > BCRYPT_MAX_PASSWORD {
            return Outcome::BadCredentials;
        }
        let known = users.get(&user);
        let hash = known.unwrap_or(any_hash).clone();
        let digest = self.digest(&user, &password, &hash);
        if known.is_some() && digest.is_some_and(|d| self.cached(&d)) {
            return Outcome::Allowed;
        }
        let Some(_waiting) = Waiting::enter(&self.waiting) else {
            return Outcome::Busy;
        };
        let matched = {
            let _turn = self.bcrypt.acquire().await;
            self.verifications.fetch_add(1, Ordering::Relaxed);
            let verify = tokio::task::spawn_blocking(move || {
                bcrypt::verify(&password, &hash).unwrap_or(false)
            });
            verify.await.unwrap_or(false)
        };
        if known.is_some() && matched {
            if let Some(d) = digest {
                self.remember(d);
            }
            Outcome::Allowed
        } else {
            Outcome::BadCredentials
        }
    }

    /// HMAC-SHA256 under the random key of the length-prefixed user, password and hash.
    fn digest(&self, user: &str, password: &[u8], hash: &str) -> Option<[u8; 32]> {
        let key = self.key.as_ref()?;
        let mut msg = Vec::with_capacity(24 + user.len() + password.len() + hash.len());
        for part in [user.as_bytes(), password, hash.as_bytes()] {
            msg.extend_from_slice(&(part.len() as u64).to_le_bytes());
            msg.extend_from_slice(part);
        }
        let tag = hmac_sha256().hmac_sign(&OkmBlock::new(key), &msg);
        // The message holds the password: do not leave it in freed memory.
        msg.fill(0);
        std::hint::black_box(&msg);
        let mut out = [0u8; 32];
        out.copy_from_slice(&tag.as_ref()[..32]);
        Some(out)
    }

    fn cached(&self, digest: &[u8; 32]) -> bool {
        let mut c = lock(&self.cache);
        c.clock += 1;
        let now = c.clock;
        // Every entry is compared, and the match is selected without a branch.
        let mut found = usize::MAX;
        for (i, (d, _)) in c.entries.iter().enumerate() {
            let mask = (ct_eq(d, digest) as usize).wrapping_neg();
            found = (i & mask) | (found & !mask);
        }
        match c.entries.get_mut(found) {
            Some(e) => {
                e.1 = now;
                true
            }
            None => false,
        }
    }

    fn remember(&self, digest: [u8; 32]) {
        let mut c = lock(&self.cache);
        c.clock += 1;
        let now = c.clock;
        if let Some(e) = c.entries.iter_mut().find(|e| ct_eq(&e.0, &digest)) {
            e.1 = now;
            return;
        }
        if c.entries.len() >= CACHE_ENTRIES {
            if let Some(oldest) = (0..c.entries.len()).min_by_key(|&i| c.entries[i].1) {
                c.entries.swap_remove(oldest);
            }
        }
        c.entries.push((digest, now));
    }
}

/// A place among the verifications waiting for bcrypt, given back when dropped (also when
/// the request's deadline drops the future).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize) -> Option<Waiting<'a>> {
        if count.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Waiting(count))
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// HMAC-SHA256 of the ring provider (through its TLS 1.3 HKDF, the only public handle).
fn hmac_sha256() -> &'static dyn Hkdf {
    rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .expect("a TLS 1.3 suite")
        .hkdf_provider
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// `Basic base64(user:password)` (the scheme in any case) to the user and the password;
/// `None` for anything else.
pub fn parse_basic(value: &[u8]) -> Option<(String, Vec<u8>)> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = crate::util::base64::decode(rest.trim_ascii())?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = std::str::from_utf8(&decoded[..colon]).ok()?.to_string();
    Some((user, decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        crate::util::base64::encode(s.as_bytes())
    }

    fn header(user: &str, password: &str) -> Vec<u8> {
        format!("Basic {}", b64(&format!("{user}:{password}"))).into_bytes()
    }

    fn users() -> BTreeMap<String, String> {
        // Cost 4, bcrypt's cheapest, keeps the test fast.
        BTreeMap::from([
            ("prometheus".to_string(), bcrypt::hash("s3cret", 4).unwrap()),
            ("grafana".to_string(), bcrypt::hash("other", 4).unwrap()),
        ])
    }

    #[test]
    fn basic_credentials_are_decoded() {
        assert_eq!(
            parse_basic(b"Basic cHJvbWV0aGV1czpzM2NyZXQ="),
            Some(("prometheus".to_string(), b"s3cret".to_vec()))
        );
        // The scheme in any case, a password holding colons, no padding.
        assert_eq!(
            parse_basic(format!("bAsIc {}", b64("u:a:b:c")).as_bytes()),
            Some(("u".to_string(), b"a:b:c".to_vec()))
        );
        assert_eq!(
            parse_basic(b"Basic dTpwdw"),
            Some(("u".to_string(), b"pw".to_vec()))
        );
        for bad in [
            &b"Bearer cHJvbWV0aGV1czpzM2NyZXQ="[..],
            b"Basic",
            b"Basic ",
            b"Basic !!!!",
            b"Basic cHJvbWV0aGV1cw==", // no colon
            b"Basic cHJvbWV0aGV1czpzM2NyZXQ=x",
            b"Basic cHJvbWV0aGV1czpzM2NyZXQ===",
            b"Basic /w==", // a user that is not UTF-8 (and no colon)
            b"BasiccHJvbWV0aGV1czpzM2NyZXQ=",
        ] {
            assert_eq!(parse_basic(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[tokio::test]
    async fn the_right_password_passes_and_is_then_cached() {
        let auth = Auth::new();
        let users = users();
        let h = header("prometheus", "s3cret");
        assert_eq!(auth.check(&users, Some(&h)).await, Outcome::Allowed);
        assert_eq!(auth.verifications(), 1);
        // The next scrape is answered from the cache, without bcrypt.
        assert_eq!(auth.check(&users, Some(&h)).await, Outcome::Allowed);
        assert_eq!(auth.check(&users, Some(&h)).await, Outcome::Allowed);
        assert_eq!(auth.verifications(), 1);
        // A new hash for the user (a reloaded web config) is verified again.
        let mut changed = users.clone();
        changed.insert("prometheus".into(), bcrypt::hash("s3cret", 4).unwrap());
        assert_eq!(auth.check(&changed, Some(&h)).await, Outcome::Allowed);
        assert_eq!(auth.verifications(), 2);
        // A user removed from the config is refused even though its password was cached.
        changed.remove("prometheus");
        assert_eq!(
            auth.check(&changed, Some(&h)).await,
            Outcome::BadCredentials
        );
    }

    #[tokio::test]
    async fn a_wrong_password_an_unknown_user_and_a_malformed_header_are_refused() {
        let auth = Auth::new();
        let users = users();
        let wrong = header("prometheus", "s3cre");
        for _ in 0..2 {
            assert_eq!(
                auth.check(&users, Some(&wrong)).await,
                Outcome::BadCredentials
            );
        }
        // Failures are not cached: each one pays bcrypt.
        assert_eq!(auth.verifications(), 2);
        // Another user's password does not open this user.
        assert_eq!(
            auth.check(&users, Some(&header("prometheus", "other")))
                .await,
            Outcome::BadCredentials
        );
        // An unknown user pays bcrypt too (no timing difference), and is refused.
        assert_eq!(
            auth.check(&users, Some(&header("nobody", "s3cret"))).await,
            Outcome::BadCredentials
        );
        assert_eq!(auth.verifications(), 4);
        assert_eq!(
            auth.check(&users, Some(b"Basic %%%")).await,
            Outcome::BadCredentials
        );
        assert_eq!(
            auth.check(&users, Some(b"Bearer abc")).await,
            Outcome::BadCredentials
        );
        assert_eq!(auth.check(&users, None).await, Outcome::NoCredentials);
        // Past bcrypt's 72 bytes a password is refused, not cut to its first 72 bytes.
        let long = "s".repeat(72);
        let mut with_long = users.clone();
        with_long.insert("long".into(), bcrypt::hash(&long, 4).unwrap());
        assert_eq!(
            auth.check(&with_long, Some(&header("long", &long))).await,
            Outcome::Allowed
        );
        assert_eq!(
            auth.check(&with_long, Some(&header("long", &format!("{long}x"))))
                .await,
            Outcome::BadCredentials
        );
        assert_eq!(auth.verifications(), 5);
    }

    #[tokio::test]
    async fn past_the_waiting_bound_requests_are_refused_as_busy() {
        let auth = std::sync::Arc::new(Auth::new());
        let users = users();
        // bcrypt's turn is taken: every verification waits.
        let turn = auth.bcrypt.acquire().await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..MAX_WAITING {
            let (a, u) = (auth.clone(), users.clone());
            tasks.spawn(async move { a.check(&u, Some(&header("prometheus", "no"))).await });
        }
        for _ in 0..10_000 {
            if auth.waiting.load(Ordering::Acquire) == MAX_WAITING {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(auth.waiting.load(Ordering::Acquire), MAX_WAITING);
        let h = header("prometheus", "s3cret");
        assert_eq!(auth.check(&users, Some(&h)).await, Outcome::Busy);
        drop(turn);
        while let Some(r) = tasks.join_next().await {
            assert_eq!(r.unwrap(), Outcome::BadCredentials);
        }
        // A check dropped at its deadline gives its place back.
        let turn = auth.bcrypt.acquire().await.unwrap();
        let cut = tokio::time::timeout(
            std::time::Duration::from_millis(10),
            auth.check(&users, Some(&h)),
        )
        .await;
        assert!(cut.is_err());
        drop(turn);
        assert_eq!(auth.waiting.load(Ordering::Acquire), 0);
        assert_eq!(auth.check(&users, Some(&h)).await, Outcome::Allowed);
    }

    #[tokio::test]
    async fn no_users_means_no_authentication() {
        let auth = Auth::new();
        assert_eq!(auth.check(&BTreeMap::new(), None).await, Outcome::Allowed);
    }

    #[test]
    fn the_cache_is_bounded_and_keeps_the_recently_used() {
        let auth = Auth::new();
        let first = auth.digest("u0", b"p", "h").unwrap();
        auth.remember(first);
        for i in 1..CACHE_ENTRIES + 10 {
            // The first entry stays in use; the others come and go.
            assert!(auth.cached(&first));
            auth.remember(auth.digest(&format!("u{i}"), b"p", "h").unwrap());
        }
        assert_eq!(lock(&auth.cache).entries.len(), CACHE_ENTRIES);
        assert!(auth.cached(&first));
        assert!(!auth.cached(&auth.digest("u1", b"p", "h").unwrap()));
        // The digest depends on each part, and on where one part ends.
        let d = |u: &str, p: &[u8], h: &str| auth.digest(u, p, h).unwrap();
        assert_ne!(d("ab", b"c", "h"), d("a", b"bc", "h"));
        assert_ne!(d("a", b"b", "h1"), d("a", b"b", "h2"));
        assert_eq!(d("a", b"b", "h"), d("a", b"b", "h"));
    }
}
