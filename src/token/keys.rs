//! Signing and verification keys, selected by `kid`. One active key signs; every key in the set
//! verifies, so a key rotation keeps the previous keys' tokens valid until they expire.
//!
//! A deployment is either HMAC (one shared secret, nothing published) or asymmetric (PEM files,
//! public keys published as a JWKS), never both: with only asymmetric keys in the set, a token
//! "signed" with HS256 and a public key as the secret has no key to verify against.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sha2::{Digest, Sha256};

pub use super::signing::SigningKey;
use super::verifying::VerifyingKey;
use crate::config::{JwtSettings, SigningAlgorithm};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("jwt.signing_key must not be empty")]
    EmptySecret,
    #[error("jwt.algorithm {0} needs jwt.private_key_file (a PEM private key)")]
    MissingPrivateKey(SigningAlgorithm),
    #[error(
        "HMAC and asymmetric keys cannot be mixed (key confusion): {0}. Use either jwt.signing_key \
         with HS256/384/512, or jwt.private_key_file with an asymmetric algorithm"
    )]
    Mixed(&'static str),
    #[error("cannot read key file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is not {expected}")]
    Format { path: PathBuf, expected: String },
}

/// A public key as published in the JWKS (RFC 7517): public members only, by construction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PublicJwk {
    pub kty: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

pub struct KeySet {
    signing: SigningKey,
    verifying: HashMap<String, VerifyingKey>,
    /// The JWKS: the active key first, then the previous ones. Empty for HMAC.
    public: Vec<PublicJwk>,
}

impl KeySet {
    pub fn from_settings(jwt: &JwtSettings) -> Result<KeySet, KeyError> {
        let algorithm = Algorithm::from(jwt.algorithm);
        if jwt.algorithm.is_hmac() {
            return KeySet::hmac(algorithm, jwt);
        }
        if jwt.signing_key.is_some() {
            return Err(KeyError::Mixed(
                "jwt.signing_key is set while jwt.algorithm is asymmetric",
            ));
        }
        let private_key_file = jwt
            .private_key_file
            .as_deref()
            .ok_or(KeyError::MissingPrivateKey(jwt.algorithm))?;
        KeySet::asymmetric(algorithm, private_key_file, &jwt.previous_public_key_files)
    }

    fn hmac(algorithm: Algorithm, jwt: &JwtSettings) -> Result<KeySet, KeyError> {
        if jwt.private_key_file.is_some() || !jwt.previous_public_key_files.is_empty() {
            return Err(KeyError::Mixed(
                "jwt.private_key_file or jwt.previous_public_key_files is set while jwt.algorithm is HMAC",
            ));
        }
        let secret = jwt.hmac_secret();
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        let kid = hmac_kid(algorithm, secret);
        let verifying = VerifyingKey::hmac(algorithm, secret);
        Ok(KeySet {
            signing: SigningKey::hmac(kid.clone(), algorithm, secret),
            verifying: HashMap::from([(kid, verifying)]),
            public: Vec::new(),
        })
    }

    fn asymmetric(
        algorithm: Algorithm,
        private_key_file: &Path,
        previous_public_key_files: &[PathBuf],
    ) -> Result<KeySet, KeyError> {
        let (signing_key, active) = load_private_key(private_key_file, algorithm)?;
        let mut set = KeySet {
            signing: SigningKey::new(active.jwk.kid.clone(), algorithm, signing_key),
            verifying: HashMap::new(),
            public: Vec::new(),
        };
        set.add_verifying(active);
        for path in previous_public_key_files {
            set.add_verifying(load_public_key(path, algorithm)?);
        }
        Ok(set)
    }

    /// Adds a verification key; the same key listed twice is kept once.
    fn add_verifying(&mut self, key: PublicKey) {
        if self.verifying.contains_key(&key.jwk.kid) {
            return;
        }
        self.verifying.insert(
            key.jwk.kid.clone(),
            VerifyingKey::public(key.decoding, key.algorithm),
        );
        self.public.push(key.jwk);
    }

    pub fn signing(&self) -> &SigningKey {
        &self.signing
    }

    pub fn verifying(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.get(kid)
    }

    /// Every public key that may still verify a live token; never an HMAC secret.
    pub fn public_keys(&self) -> &[PublicJwk] {
        &self.public
    }

    /// The algorithms of every verifying key, the signing key's first.
    pub fn algorithms(&self) -> Vec<String> {
        let mut algorithms = vec![format!("{:?}", self.signing.algorithm)];
        for jwk in &self.public {
            if !algorithms.contains(&jwk.alg) {
                algorithms.push(jwk.alg.clone());
            }
        }
        algorithms
    }
}

pub fn is_hmac(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    )
}

/// A public key ready to verify, with its JWKS entry.
struct PublicKey {
    algorithm: Algorithm,
    decoding: DecodingKey,
    jwk: PublicJwk,
}

/// Reads the active key and proves it works: a probe signed with it must verify with the public
/// key derived from it, so a key of the wrong type or curve fails at startup, not at first login.
fn load_private_key(
    path: &Path,
    algorithm: Algorithm,
) -> Result<(EncodingKey, PublicKey), KeyError> {
    parse_private_key(&read(path)?, algorithm, path)
}

/// The `kid` (RFC 7638 thumbprint) a PEM private key signs under.
pub fn kid_of_private_key(pem: &[u8], algorithm: Algorithm) -> Result<String, KeyError> {
    let (_, public) = parse_private_key(pem, algorithm, Path::new("(generated key)"))?;
    Ok(public.jwk.kid)
}

fn parse_private_key(
    pem: &[u8],
    algorithm: Algorithm,
    path: &Path,
) -> Result<(EncodingKey, PublicKey), KeyError> {
    let wrong_format = || KeyError::Format {
        path: path.to_owned(),
        expected: format!("a PKCS#8 PEM private key for {algorithm:?}"),
    };
    let encoding = match algorithm_family(algorithm) {
        Family::Ed => EncodingKey::from_ed_pem(pem),
        Family::Ec => EncodingKey::from_ec_pem(pem),
        Family::Rsa => EncodingKey::from_rsa_pem(pem),
    }
    .map_err(|_| wrong_format())?;
    let jwk = Jwk::from_encoding_key(&encoding, algorithm).map_err(|_| wrong_format())?;
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| wrong_format())?;
    let probe = jsonwebtoken::encode(&Header::new(algorithm), &serde_json::json!({}), &encoding)
        .map_err(|_| wrong_format())?;
    jsonwebtoken::decode::<serde_json::Value>(&probe, &decoding, &claim_free_validation(algorithm))
        .map_err(|_| wrong_format())?;
    let jwk = public_jwk(&jwk, algorithm).ok_or_else(wrong_format)?;
    Ok((
        encoding,
        PublicKey {
            algorithm,
            decoding,
            jwk,
        },
    ))
}

/// Reads a verification-only public key, written `path` or `ALG:path`. Without `ALG:` its
/// algorithm follows from the key: Ed25519 → EdDSA, P-256 → ES256, P-384 → ES384, RSA → the
/// active algorithm when that is RSA too, else RS256 (an RSA key after a switch between RS* and
/// PS* needs its `ALG:`).
fn load_public_key(entry: &Path, active: Algorithm) -> Result<PublicKey, KeyError> {
    let (stated, path) = stated_algorithm(entry);
    let pem = read(&path)?;
    let path = path.as_path();
    let wrong_format = || KeyError::Format {
        path: path.to_owned(),
        expected: "a PEM public key (Ed25519, P-256, P-384 or RSA) of its stated algorithm".into(),
    };
    let (decoding, algorithm) = if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
        (key, Algorithm::EdDSA)
    } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
        let curve = ec_curve(&key).ok_or_else(wrong_format)?;
        (key, curve)
    } else if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        let algorithm = match algorithm_family(active) {
            Family::Rsa => active,
            _ => Algorithm::RS256,
        };
        (key, algorithm)
    } else {
        return Err(wrong_format());
    };
    // An RSA key may be stated RS* or PS*; any other key has exactly one algorithm.
    let fits = |stated: Algorithm| {
        let rsa = |alg: Algorithm| !is_hmac(alg) && algorithm_family(alg) == Family::Rsa;
        stated == algorithm || (rsa(stated) && rsa(algorithm))
    };
    let algorithm = match stated {
        Some(stated) if fits(stated) => stated,
        Some(_) => return Err(wrong_format()),
        None => algorithm,
    };
    let jwk = Jwk::from_decoding_key(&decoding, Some(algorithm)).map_err(|_| wrong_format())?;
    let jwk = public_jwk(&jwk, algorithm).ok_or_else(wrong_format)?;
    Ok(PublicKey {
        algorithm,
        decoding,
        jwk,
    })
}

/// Splits `PS256:keys/old.pub.pem` into its algorithm and path; a plain path has none.
fn stated_algorithm(entry: &Path) -> (Option<Algorithm>, PathBuf) {
    let text = entry.to_string_lossy();
    if let Some((prefix, path)) = text.split_once(':')
        && let Ok(algorithm) = Algorithm::from_str(prefix)
    {
        return (Some(algorithm), PathBuf::from(path));
    }
    (None, entry.to_owned())
}

fn ec_curve(key: &DecodingKey) -> Option<Algorithm> {
    let jwk = Jwk::from_decoding_key(key, None).ok()?;
    match jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        _ => None,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ed,
    Ec,
    Rsa,
}

/// The key family of an asymmetric algorithm (HMAC is handled apart).
pub fn algorithm_family(algorithm: Algorithm) -> Family {
    match algorithm {
        Algorithm::EdDSA => Family::Ed,
        Algorithm::ES256 | Algorithm::ES384 => Family::Ec,
        _ => Family::Rsa,
    }
}

/// The JWKS entry of a public key, `kid` being its RFC 7638 SHA-256 thumbprint. Built member
/// by member from the public parameters, so a private member can never slip through.
fn public_jwk(jwk: &Jwk, algorithm: Algorithm) -> Option<PublicJwk> {
    let kid = jwk.thumbprint(ThumbprintHash::SHA256).ok()?;
    let mut public = PublicJwk {
        kty: String::new(),
        kid,
        alg: format!("{algorithm:?}"),
        use_: "sig".into(),
        crv: None,
        x: None,
        y: None,
        n: None,
        e: None,
    };
    match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(okp) => {
            public.kty = "OKP".into();
            public.crv = Some("Ed25519".into());
            public.x = Some(okp.x.clone());
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            public.kty = "EC".into();
            public.crv = Some(
                match ec.curve {
                    EllipticCurve::P256 => "P-256",
                    EllipticCurve::P384 => "P-384",
                    _ => return None,
                }
                .into(),
            );
            public.x = Some(ec.x.clone());
            public.y = Some(ec.y.clone());
        }
        AlgorithmParameters::RSA(rsa) => {
            public.kty = "RSA".into();
            public.n = Some(rsa.n.clone());
            public.e = Some(rsa.e.clone());
        }
        _ => return None,
    }
    Some(public)
}

/// A stable, public id for an HMAC key: a digest of the algorithm and the secret. It reveals
/// nothing a token's own HMAC does not, and changes whenever the key does.
fn hmac_kid(algorithm: Algorithm, secret: &[u8]) -> String {
    let mut digest = Sha256::new();
    digest.update(format!("jwtd-hmac-kid:{algorithm:?}:").as_bytes());
    digest.update(secret);
    URL_SAFE_NO_PAD.encode(&digest.finalize()[..12])
}

fn claim_free_validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    validation
}
