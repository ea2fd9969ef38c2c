//! Globs for paths and names: `*` matches any run of characters (slashes included, as in
//! Vault policy paths), `?` one character; everything else is literal.

use std::fmt;

use regex::Regex;

#[derive(Clone)]
pub struct Glob {
    text: String,
    re: Regex,
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
        Ok(Glob {
            text: text.to_string(),
            re,
        })
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
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
}
