//! `[cookies]` and `[cors]`: the browser transport (the refresh token in an HttpOnly cookie) and
//! the origins allowed to call jwtd with credentials.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::human_duration;

#[derive(Debug, Clone, Deserialize)]
pub struct CookieSettings {
    /// The `/api/token/cookie/…` endpoints answer 404 unless this is set.
    pub enabled: bool,
    /// `Secure` cookies with the `__Secure-` prefix; off only for plain-HTTP development
    /// (production refuses it).
    pub secure: bool,
    /// Tabs refreshing at once with one cookie all get the same successor within this window.
    #[serde(deserialize_with = "human_duration")]
    pub refresh_reuse_grace: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CorsSettings {
    /// Exact origins (`https://app.example.com`) that may call jwtd from a browser with
    /// credentials; any other origin gets no `Access-Control-Allow-*` header.
    #[serde(deserialize_with = "origins")]
    pub allowed_origins: Vec<String>,
}

/// Each entry must be an origin exactly as a browser sends it: scheme, host and port only.
fn origins<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let entries = Vec::<String>::deserialize(deserializer)?;
    entries
        .iter()
        .map(|entry| exact_origin(entry.trim()).map_err(serde::de::Error::custom))
        .collect()
}

/// `entry` when it is an http(s) origin in the form a browser's `Origin` header takes.
pub fn exact_origin(entry: &str) -> Result<String, String> {
    let refuse = || {
        format!(
            "cors.allowed_origins: {entry:?} is not an origin (scheme://host[:port], no path or \
             trailing slash, e.g. https://app.example.com)"
        )
    };
    let url = url::Url::parse(entry).map_err(|_| refuse())?;
    let origin = url.origin().ascii_serialization();
    let web = matches!(url.scheme(), "http" | "https");
    if !web || origin != entry {
        return Err(refuse());
    }
    Ok(origin)
}

#[cfg(test)]
mod tests {
    use super::exact_origin;

    #[test]
    fn only_exact_origins_are_accepted() {
        for good in ["https://app.example.com", "http://app.jwtd.test:8080"] {
            assert_eq!(exact_origin(good).unwrap(), good);
        }
        let bad = [
            "*",
            "null",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://APP.example.com",
            "https://app.example.com:443",
            "ftp://app.example.com",
        ];
        for entry in bad {
            assert!(exact_origin(entry).is_err(), "{entry}");
        }
    }
}
