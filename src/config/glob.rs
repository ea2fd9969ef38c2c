//! Globs for paths and names: `*` matches any run of characters (slashes included, as in
//! Vault policy paths), `?` one character; everything else is literal.

use std::fmt;

use regex::Regex;

#[derive(Clone)]
pub struct Glob {
    text: String,
    re: Regex,
    /// For globs without `?`: the literal runs between `*`s, matched without the regex.
    segments: Option<Vec<String>>,
}

impl Glob {
    pub fn new(text: &str) -> Result<Glob, String> {
        if text.is_empty() {
            return Err("a glob must not be empty".into());
        }
        let mut pattern = String::with_capacity(text.len() + 8);
        pattern.push_str("^(?s:");
        for c in text.chars() {
            match c {
                '*' => pattern.push_str(".*"),
                '?' => pattern.push('.'),
                c => pattern.push_str(&regex::escape(&c.to_string())),
            }
        }
        pattern.push_str(")$");
        let re = Regex::new(&pattern).map_err(|e| e.to_string())?;
        let segments = (!text.contains('?')).then(|| text.split('*').map(str::to_string).collect());
        Ok(Glob {
            text: text.to_string(),
            re,
            segments,
        })
    }

    pub fn is_match(&self, s: &str) -> bool {
        match &self.segments {
            Some(segs) => match_segments(segs, s),
            None => self.re.is_match(s),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// `segs` are the literal runs of a glob split at `*`: the first must start `s`, the last
/// must end it, and the ones between must appear in order without overlapping.
fn match_segments(segs: &[String], s: &str) -> bool {
    let [first, middle @ .., last] = segs else {
        return segs.first().is_some_and(|only| only == s);
    };
    let Some(mut rest) = s.strip_prefix(first.as_str()) else {
        return false;
    };
    if rest.len() < last.len() {
        return false;
    }
    let end = rest.len() - last.len();
    if !rest.is_char_boundary(end) || &rest[end..] != last.as_str() {
        return false;
    }
    rest = &rest[..end];
    for seg in middle {
        match rest.find(seg.as_str()) {
            Some(i) => rest = &rest[i + seg.len()..],
            None => return false,
        }
    }
    true
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn matches_like_vault_paths() {
        let g = Glob::new("database/creds/*").unwrap();
        assert!(g.is_match("database/creds/bookstore-platform-acme"));
        assert!(g.is_match("database/creds/a/b"));
        assert!(!g.is_match("database/roles/x"));
        let g = Glob::new("ci-?").unwrap();
        assert!(g.is_match("ci-1"));
        assert!(!g.is_match("ci-12"));
        assert!(Glob::new("a.b").unwrap().is_match("a.b"));
        assert!(!Glob::new("a.b").unwrap().is_match("axb"));
    }

    #[test]
    fn segment_matching_agrees_with_the_regex() {
        let globs = [
            "auth/*/login",
            "auth/*/login/*",
            "*",
            "a*",
            "*a",
            "*a*b*",
            "ab*ab",
            "x",
            "*-ci",
            "ci-*",
            "a**b",
            "sys/leases/revoke",
        ];
        let inputs = [
            "",
            "a",
            "ab",
            "abab",
            "aab",
            "auth/userpass/login",
            "auth/userpass/login/bob",
            "auth/x/loginz",
            "auth//login",
            "gha-ci",
            "ci-",
            "x",
            "xx",
            "ba",
            "sys/leases/revoke",
            "héllo*a",
        ];
        for g in globs {
            let glob = Glob::new(g).unwrap();
            for s in inputs {
                assert_eq!(glob.is_match(s), glob.re.is_match(s), "glob {g:?} on {s:?}");
            }
        }
    }
}
