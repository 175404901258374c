//! `jwt.algorithm`: the closed set of algorithms jwtd signs with, spelt as in a JWS header
//! (RFC 7518), exactly: `HS256`, not `hs256`.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// An algorithm jwtd signs with. HMAC (`HS*`) signs with `jwt.signing_key`; the others with
/// `jwt.private_key_file`.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum SigningAlgorithm {
    HS256,
    HS384,
    HS512,
    EdDSA,
    ES256,
    ES384,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
}

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 12] = [
        SigningAlgorithm::HS256,
        SigningAlgorithm::HS384,
        SigningAlgorithm::HS512,
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::ES256,
        SigningAlgorithm::ES384,
        SigningAlgorithm::RS256,
        SigningAlgorithm::RS384,
        SigningAlgorithm::RS512,
        SigningAlgorithm::PS256,
        SigningAlgorithm::PS384,
        SigningAlgorithm::PS512,
    ];

    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::HS256 => "HS256",
            SigningAlgorithm::HS384 => "HS384",
            SigningAlgorithm::HS512 => "HS512",
            SigningAlgorithm::EdDSA => "EdDSA",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::ES384 => "ES384",
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::RS384 => "RS384",
            SigningAlgorithm::RS512 => "RS512",
            SigningAlgorithm::PS256 => "PS256",
            SigningAlgorithm::PS384 => "PS384",
            SigningAlgorithm::PS512 => "PS512",
        }
    }

    pub fn is_hmac(self) -> bool {
        self.hmac_output_bytes().is_some()
    }

    /// The output size of the HMAC hash, which is also the shortest acceptable key
    /// (RFC 7518 §3.2); `None` for an asymmetric algorithm.
    pub fn hmac_output_bytes(self) -> Option<usize> {
        match self {
            SigningAlgorithm::HS256 => Some(32),
            SigningAlgorithm::HS384 => Some(48),
            SigningAlgorithm::HS512 => Some(64),
            _ => None,
        }
    }
}

/// A name that is not one of [`SigningAlgorithm::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not supported ({})", supported())]
pub struct UnsupportedAlgorithm {
    name: String,
}

fn supported() -> String {
    SigningAlgorithm::ALL
        .map(SigningAlgorithm::as_str)
        .join(", ")
}

impl FromStr for SigningAlgorithm {
    type Err = UnsupportedAlgorithm;

    fn from_str(name: &str) -> Result<SigningAlgorithm, UnsupportedAlgorithm> {
        SigningAlgorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.as_str() == name)
            .ok_or_else(|| UnsupportedAlgorithm {
                name: name.to_owned(),
            })
    }
}

impl TryFrom<String> for SigningAlgorithm {
    type Error = UnsupportedAlgorithm;

    fn try_from(name: String) -> Result<SigningAlgorithm, UnsupportedAlgorithm> {
        name.parse()
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<SigningAlgorithm> for jsonwebtoken::Algorithm {
    fn from(algorithm: SigningAlgorithm) -> jsonwebtoken::Algorithm {
        match algorithm {
            SigningAlgorithm::HS256 => jsonwebtoken::Algorithm::HS256,
            SigningAlgorithm::HS384 => jsonwebtoken::Algorithm::HS384,
            SigningAlgorithm::HS512 => jsonwebtoken::Algorithm::HS512,
            SigningAlgorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            SigningAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            SigningAlgorithm::ES384 => jsonwebtoken::Algorithm::ES384,
            SigningAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            SigningAlgorithm::RS384 => jsonwebtoken::Algorithm::RS384,
            SigningAlgorithm::RS512 => jsonwebtoken::Algorithm::RS512,
            SigningAlgorithm::PS256 => jsonwebtoken::Algorithm::PS256,
            SigningAlgorithm::PS384 => jsonwebtoken::Algorithm::PS384,
            SigningAlgorithm::PS512 => jsonwebtoken::Algorithm::PS512,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_parses_from_its_jws_name_and_maps_to_the_same_name() {
        for algorithm in SigningAlgorithm::ALL {
            assert_eq!(algorithm.as_str().parse(), Ok(algorithm));
            // jsonwebtoken's Debug is its `alg` name: the header says what the config said.
            let signed = jsonwebtoken::Algorithm::from(algorithm);
            assert_eq!(format!("{signed:?}"), algorithm.as_str());
            assert_eq!(
                algorithm.is_hmac(),
                signed.family() == jsonwebtoken::AlgorithmFamily::Hmac
            );
        }
    }

    #[test]
    fn only_the_exact_spelling_is_accepted() {
        for name in [
            "hs256", "Hs256", "EDDSA", "eddsa", "none", "", "HS256 ", "ES512",
        ] {
            let err = name.parse::<SigningAlgorithm>().unwrap_err().to_string();
            assert!(err.contains(&format!("{name:?} is not supported")), "{err}");
            assert!(err.contains("HS256, HS384, HS512, EdDSA"), "{err}");
        }
    }

    #[test]
    fn hmac_keys_are_at_least_as_long_as_the_hash() {
        assert_eq!(SigningAlgorithm::HS256.hmac_output_bytes(), Some(32));
        assert_eq!(SigningAlgorithm::HS384.hmac_output_bytes(), Some(48));
        assert_eq!(SigningAlgorithm::HS512.hmac_output_bytes(), Some(64));
        assert_eq!(SigningAlgorithm::EdDSA.hmac_output_bytes(), None);
        assert!(!SigningAlgorithm::RS256.is_hmac());
    }
}
