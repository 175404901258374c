//! `server.public_url`: where clients reach jwtd. The OAuth metadata names it as the issuer and
//! builds every endpoint URL on it, so it is checked at load rather than trusted.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use url::Url;

/// An absolute `http(s)` URL without query, fragment or credentials, as the operator wrote it
/// minus any trailing slash, so that endpoint paths append to it (`{url}/oauth/token`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A `server.public_url` that cannot be the base of jwtd's endpoint URLs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{url:?} is not a public URL: {problem} (write the absolute URL clients reach jwtd at, e.g. \
     https://auth.example.com)"
)]
pub struct InvalidPublicUrl {
    url: String,
    problem: String,
}

impl FromStr for PublicUrl {
    type Err = InvalidPublicUrl;

    fn from_str(text: &str) -> Result<PublicUrl, InvalidPublicUrl> {
        let refuse = |problem: String| InvalidPublicUrl {
            url: text.to_owned(),
            problem,
        };
        let trimmed = text.trim().trim_end_matches('/');
        let url = Url::parse(trimmed).map_err(|e| refuse(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse(format!(
                "the scheme is {:?}, not https",
                url.scheme()
            )));
        }
        if url.host().is_none() {
            return Err(refuse("it has no host".into()));
        }
        // A query or fragment would end up in the middle of every endpoint URL, and credentials
        // would be published to anyone who reads the metadata.
        if url.query().is_some() {
            return Err(refuse("it has a query (`?…`)".into()));
        }
        if url.fragment().is_some() {
            return Err(refuse("it has a fragment (`#…`)".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Not echoed: the message goes to the log.
            let mut shown = url.clone();
            shown.set_username("").ok();
            shown.set_password(None).ok();
            return Err(InvalidPublicUrl {
                url: shown.to_string(),
                problem: "it carries credentials (user:password@)".into(),
            });
        }
        Ok(PublicUrl(trimmed.to_owned()))
    }
}

impl TryFrom<String> for PublicUrl {
    type Error = InvalidPublicUrl;

    fn try_from(text: String) -> Result<PublicUrl, InvalidPublicUrl> {
        text.parse()
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absolute_http_url_is_kept_without_its_trailing_slash() {
        for (written, kept) in [
            ("https://auth.example.com", "https://auth.example.com"),
            ("https://auth.example.com/", "https://auth.example.com"),
            ("https://example.com/auth//", "https://example.com/auth"),
            ("http://localhost:8000", "http://localhost:8000"),
            (" https://[::1]:8443 ", "https://[::1]:8443"),
        ] {
            assert_eq!(written.parse::<PublicUrl>().unwrap().as_str(), kept);
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        for (bad, reason) in [
            ("auth.example.com", "relative URL without a base"),
            ("/auth", "relative URL without a base"),
            ("", "relative URL without a base"),
            ("ftp://auth.example.com", "the scheme is \"ftp\""),
            ("mailto:ops@example.com", "the scheme is \"mailto\""),
            ("https://auth.example.com?x=1", "a query"),
            ("https://auth.example.com/?", "a query"),
            ("https://auth.example.com#top", "a fragment"),
            ("https://", "empty host"),
        ] {
            let err = bad.parse::<PublicUrl>().unwrap_err().to_string();
            assert!(
                err.contains(&format!("{bad:?} is not a public URL")),
                "{err}"
            );
            assert!(err.contains(reason), "{bad:?}: {err}");
            assert!(err.contains("e.g. https://auth.example.com"), "{err}");
        }
        let err = "https://ops:s3cret@auth.example.com"
            .parse::<PublicUrl>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("carries credentials"), "{err}");
        assert!(!err.contains("s3cret"), "a password is never echoed: {err}");
    }
}
