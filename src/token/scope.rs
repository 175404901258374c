//! OAuth 2.0 scopes (RFC 6749 §3.3): a set of space-separated tokens, order and repetition
//! carrying no meaning. Kept sorted so equal scopes print the same.

use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(BTreeSet<String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid scope token")]
pub struct InvalidScope(pub String);

impl Scope {
    /// Parses `scope-token *( SP scope-token )`, each token printable ASCII without `"` or `\`.
    /// Runs of spaces are tolerated, as most servers do; other whitespace is not.
    pub fn parse(text: &str) -> Result<Scope, InvalidScope> {
        text.split(' ')
            .filter(|token| !token.is_empty())
            .map(|token| {
                let valid = token
                    .bytes()
                    .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E));
                if valid {
                    Ok(token.to_owned())
                } else {
                    Err(InvalidScope(token.to_owned()))
                }
            })
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Scope)
    }

    pub fn from_tokens<I: IntoIterator<Item = S>, S: Into<String>>(tokens: I) -> Scope {
        Scope(tokens.into_iter().map(Into::into).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn intersection(&self, other: &Scope) -> Scope {
        Scope(self.0.intersection(&other.0).cloned().collect())
    }

    /// The tokens of `self` that `allowed` lacks.
    pub fn beyond(&self, allowed: &Scope) -> Vec<&str> {
        self.tokens()
            .filter(|token| !allowed.0.contains(*token))
            .collect()
    }

    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for token in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(token)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_repetition_do_not_matter() {
        let a = Scope::parse("write read  read").unwrap();
        assert_eq!(a, Scope::parse("read write").unwrap());
        assert_eq!(a.to_string(), "read write");
    }

    #[test]
    fn quotes_backslashes_and_control_characters_are_refused() {
        for bad in ["a\"b", "a\\b", "a\tb", "é"] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subset_and_intersection() {
        let granted = Scope::parse("read write").unwrap();
        let asked = Scope::parse("read admin").unwrap();
        assert!(!asked.is_subset(&granted));
        assert_eq!(asked.beyond(&granted), vec!["admin"]);
        assert_eq!(asked.intersection(&granted).to_string(), "read");
    }
}
