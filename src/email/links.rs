//! The tokens in activation and reset links, in Django's manner (`PasswordResetTokenGenerator`):
//! `<timestamp in base36>-<HMAC-SHA256>` over the purpose, the user id, the timestamp and the
//! state that the link's use changes (the password hash, the last login, the active flag and
//! whether the user awaits activation). So a
//! link needs no storage, yet it is single-use (its use changes the state it signs), it dies
//! when the password changes or the user logs in, and it expires with its timestamp. The tag is
//! compared in constant time. `uid` is the user id in base64url, as Django's
//! `urlsafe_base64_encode(force_bytes(pk))`.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::clock::{SharedClock, UnixSecs};
use crate::store::users::Credentials;

/// What a link is for; a token for one never passes as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    Activation,
    PasswordReset,
}

impl LinkPurpose {
    fn label(self) -> &'static str {
        match self {
            LinkPurpose::Activation => "activation",
            LinkPurpose::PasswordReset => "password_reset",
        }
    }
}

pub struct LinkTokens {
    key: hmac::Key,
    lifetime: Duration,
    clock: SharedClock,
}

impl LinkTokens {
    /// `secret` is hashed into the key under a label of its own, so a key shared with the JWT
    /// signer never signs the same bytes for both.
    pub fn new(secret: &[u8], lifetime: Duration, clock: SharedClock) -> LinkTokens {
        let derivation = hmac::Key::new(hmac::HMAC_SHA256, b"jwtd email link tokens");
        let derived = hmac::sign(&derivation, secret);
        LinkTokens {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            lifetime,
            clock,
        }
    }

    /// A token for `user` as they are now.
    pub fn make(&self, purpose: LinkPurpose, user: &Credentials) -> String {
        let issued = self.clock.now().secs();
        let tag = hmac::sign(&self.key, &message(purpose, user, issued));
        format!(
            "{}-{}",
            to_base36(issued.0),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// Whether `token` was made for `purpose` and `user` as they are now, within the lifetime.
    pub fn check(&self, purpose: LinkPurpose, token: &str, user: &Credentials) -> bool {
        let Some((issued, tag)) = token.split_once('-') else {
            return false;
        };
        let (Some(issued), Ok(tag)) = (from_base36(issued), URL_SAFE_NO_PAD.decode(tag)) else {
            return false;
        };
        let issued = UnixSecs(issued);
        let now = self.clock.now().secs();
        let age = now.saturating_since(issued);
        let fresh = issued <= now && age <= self.lifetime;
        let genuine = hmac::verify(&self.key, &message(purpose, user, issued), &tag).is_ok();
        fresh && genuine
    }
}

/// The signed bytes: fields joined by NUL, which none of them contains.
fn message(purpose: LinkPurpose, user: &Credentials, issued: UnixSecs) -> Vec<u8> {
    // Whole seconds, as Django drops the microseconds: the database may round them.
    let last_login = user
        .user
        .last_login
        .map_or(String::new(), |at| at.timestamp().to_string());
    [
        purpose.label(),
        &user.user.id.to_string(),
        &issued.0.to_string(),
        &user.password_hash,
        &last_login,
        if user.user.is_active { "1" } else { "0" },
        if user.awaiting_activation { "1" } else { "0" },
    ]
    .join("\0")
    .into_bytes()
}

/// The `uid` of a link.
pub fn encode_uid(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.to_string())
}

/// The user id in a link's `uid`, if it is one.
pub fn decode_uid(uid: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(uid.trim_end_matches('=')).ok()?;
    Uuid::parse_str(std::str::from_utf8(&bytes).ok()?).ok()
}

fn to_base36(mut value: i64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if value <= 0 {
        return "0".into();
    }
    let mut digits = Vec::new();
    while value > 0 {
        digits.push(DIGITS[usize::try_from(value % 36).unwrap_or(0)]);
        value /= 36;
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

/// At most 12 digits (beyond the year 10000 in seconds): a longer one is no timestamp of ours.
fn from_base36(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 12 {
        return None;
    }
    i64::from_str_radix(text, 36).ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;

    use super::*;
    use crate::accounts::User;
    use crate::clock::ManualClock;

    fn user() -> Credentials {
        Credentials {
            user: User {
                id: Uuid::now_v7(),
                username: "alice".into(),
                email: "alice@example.com".into(),
                is_active: false,
                is_staff: false,
                date_joined: Utc::now(),
                last_login: None,
                app_metadata: Default::default(),
            },
            password_hash: "$argon2id$one".into(),
            awaiting_activation: true,
        }
    }

    fn tokens() -> (LinkTokens, Arc<ManualClock>) {
        let clock = ManualClock::starting_now();
        let tokens = LinkTokens::new(b"secret", Duration::from_secs(3600), clock.clone());
        (tokens, clock)
    }

    #[test]
    fn a_token_holds_for_its_user_and_purpose_until_it_expires() {
        let (tokens, clock) = tokens();
        let alice = user();
        let token = tokens.make(LinkPurpose::Activation, &alice);
        assert!(tokens.check(LinkPurpose::Activation, &token, &alice));
        assert!(!tokens.check(LinkPurpose::PasswordReset, &token, &alice));
        assert!(!tokens.check(LinkPurpose::Activation, &token, &user()));
        clock.advance(Duration::from_secs(3600));
        assert!(tokens.check(LinkPurpose::Activation, &token, &alice));
        clock.advance(Duration::from_secs(1));
        assert!(!tokens.check(LinkPurpose::Activation, &token, &alice));
    }

    #[test]
    fn a_change_of_password_login_or_active_flag_kills_the_token() {
        let (tokens, _) = tokens();
        let alice = user();
        let token = tokens.make(LinkPurpose::PasswordReset, &alice);
        let changes: [fn(&mut Credentials); 4] = [
            |c| c.password_hash = "$argon2id$two".into(),
            |c| c.user.last_login = Some(Utc::now()),
            |c| c.user.is_active = true,
            |c| c.awaiting_activation = false,
        ];
        for change in changes {
            let mut changed = user();
            changed.user.id = alice.user.id;
            change(&mut changed);
            assert!(!tokens.check(LinkPurpose::PasswordReset, &token, &changed));
        }
    }

    #[test]
    fn forged_and_malformed_tokens_are_refused() {
        let (tokens, _) = tokens();
        let alice = user();
        let token = tokens.make(LinkPurpose::PasswordReset, &alice);
        let (issued, tag) = token.split_once('-').unwrap();
        let later = to_base36(from_base36(issued).unwrap() + 1);
        let other_key = LinkTokens::new(b"other", Duration::from_secs(3600), tokens.clock.clone());
        for bad in [
            format!("{later}-{tag}"),
            other_key.make(LinkPurpose::PasswordReset, &alice),
            String::new(),
            "-".into(),
            "zzzzzzzzzzzzzzzzz-AAAA".into(),
            format!("{issued}-{tag}!"),
            format!("{issued}-"),
        ] {
            assert!(
                !tokens.check(LinkPurpose::PasswordReset, &bad, &alice),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_uid_is_the_user_id_in_base64url() {
        let id = Uuid::now_v7();
        assert_eq!(decode_uid(&encode_uid(id)), Some(id));
        assert_eq!(
            URL_SAFE_NO_PAD.decode(encode_uid(id)).unwrap(),
            id.to_string().into_bytes()
        );
        for bad in ["", "!!", "YWJj", &URL_SAFE_NO_PAD.encode("not-a-uuid")] {
            assert_eq!(decode_uid(bad), None, "{bad}");
        }
    }
}
