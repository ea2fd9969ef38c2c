//! Alertmanager base URLs: checked once (config load and sink start) and turned into what
//! a connection needs.
//!
//! Invariants: only `http://` and `https://` base URLs without credentials, query string
//! or API path are accepted; the normalised form has no trailing `/`, so the same
//! Alertmanager written two ways is one. An error never repeats the URL, which could
//! carry a password.

use hyper::Uri;

/// Why a URL is not an Alertmanager base URL. The text completes "alertmanager.url ...".
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("must be an http:// or https:// URL")]
    NotAUrl,
    #[error("must start with http:// or https://")]
    Scheme,
    #[error("must name a host")]
    NoHost,
    #[error("must not carry credentials (user:password@)")]
    Credentials,
    #[error("must not have a query string")]
    Query,
    #[error("must be Alertmanager's base URL (e.g. http://127.0.0.1:9093), without /api/v2")]
    ApiPath,
}

/// One Alertmanager: where to POST.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The normalised base URL (no trailing `/`), for config and logs.
    pub base: String,
    /// `<base>/api/v2/alerts`.
    pub api: String,
}

impl Endpoint {
    /// Parse a base URL.
    pub fn parse(url: &str) -> Result<Endpoint, UrlError> {
        let uri: Uri = url.parse().map_err(|_| UrlError::NotAUrl)?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(UrlError::Scheme),
        };
        let auth = uri.authority().ok_or(UrlError::NoHost)?;
        if auth.as_str().contains('@') {
            return Err(UrlError::Credentials);
        }
        let host = auth.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        if uri.query().is_some() {
            return Err(UrlError::Query);
        }
        let prefix = uri.path().trim_end_matches('/');
        if prefix.ends_with("/api/v2/alerts") || prefix.ends_with("/api/v2") {
            return Err(UrlError::ApiPath);
        }
        let base = format!(
            "{}://{}{prefix}",
            if tls { "https" } else { "http" },
            auth.as_str()
        );
        Ok(Endpoint {
            api: format!("{base}/api/v2/alerts"),
            base,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_normalised() {
        let e = Endpoint::parse("http://127.0.0.1:9093/").unwrap();
        assert_eq!(
            (e.base.as_str(), e.api.as_str()),
            (
                "http://127.0.0.1:9093",
                "http://127.0.0.1:9093/api/v2/alerts"
            )
        );
        let e = Endpoint::parse("https://am.example/alertmanager/").unwrap();
        assert_eq!(e.api, "https://am.example/alertmanager/api/v2/alerts");
        let e = Endpoint::parse("http://[::1]:9093").unwrap();
        assert_eq!(e.api, "http://[::1]:9093/api/v2/alerts");
        for (bad, why) in [
            ("127.0.0.1:9093", UrlError::Scheme),
            ("ftp://x", UrlError::Scheme),
            ("http://user:pw@am:9093", UrlError::Credentials),
            ("http://am:9093/api/v2/alerts", UrlError::ApiPath),
            ("http://am:9093/?a=1", UrlError::Query),
            ("not a url", UrlError::NotAUrl),
        ] {
            let e = Endpoint::parse(bad);
            assert_eq!(e.as_ref().err(), Some(&why), "{bad}");
            assert!(!e.unwrap_err().to_string().contains("pw"));
        }
    }
}
