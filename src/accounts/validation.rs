//! Django's validation rules and messages for usernames, emails and passwords.

use unicode_normalization::UnicodeNormalization;

use crate::password::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};

pub const MAX_USERNAME_CHARS: usize = 150;
pub const MAX_EMAIL_CHARS: usize = 254;

/// Django's `UnicodeUsernameValidator`: letters, digits and @ . + - _ only. The length limit holds
/// for the name as given and for its normalised form, which is stored too (NFKC can make a
/// name longer: `ﷺ` is one character and eighteen after it).
pub fn validate_username(username: &str) -> Vec<String> {
    let allowed = |c: char| c.is_alphanumeric() || "@.+-_".contains(c);
    if username.is_empty()
        || username.chars().count() > MAX_USERNAME_CHARS
        || normalize_username(username).chars().count() > MAX_USERNAME_CHARS
        || !username.chars().all(allowed)
    {
        return vec![format!(
            "Enter a valid username of at most {MAX_USERNAME_CHARS} characters. This value may \
             contain only letters, numbers, and @/./+/-/_ characters."
        )];
    }
    Vec::new()
}

/// The uniqueness key of a username: NFKC, then case folded, so look-alikes (`Alice`,
/// `ａｌｉｃｅ`) are one account.
pub fn normalize_username(username: &str) -> String {
    username
        .nfkc()
        .flat_map(char::to_lowercase)
        .nfkc()
        .collect()
}

/// Empty means "no email"; otherwise a plausible single address.
pub fn validate_email(email: &str) -> Vec<String> {
    if email.is_empty() {
        return Vec::new();
    }
    let valid = email.chars().count() <= MAX_EMAIL_CHARS
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Vec::new()
    } else {
        vec!["Enter a valid email address.".into()]
    }
}

/// Django's default password validators, and the contract's 8..128 characters.
pub fn validate_password(password: &str, username: &str, email: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let length = password.chars().count();
    if length < MIN_PASSWORD_CHARS {
        problems.push(format!(
            "This password is too short. It must contain at least {MIN_PASSWORD_CHARS} characters."
        ));
    }
    if length > MAX_PASSWORD_CHARS {
        problems.push(format!(
            "Ensure this field has no more than {MAX_PASSWORD_CHARS} characters."
        ));
    }
    if !password.is_empty() && password.chars().all(|c| c.is_ascii_digit()) {
        problems.push("This password is entirely numeric.".into());
    }
    let lowered = password.to_lowercase();
    let email_local = email.split('@').next().unwrap_or_default();
    if [username, email_local]
        .iter()
        .any(|attr| attr.chars().count() >= 3 && lowered.contains(&attr.to_lowercase()))
    {
        problems.push("The password is too similar to the username or email.".into());
    }
    if COMMON_PASSWORDS.contains(&lowered.as_str()) {
        problems.push("This password is too common.".into());
    }
    problems
}

/// The most common passwords of at least 8 characters (from the lists Django's validator uses).
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "12345678",
    "123456789",
    "1234567890",
    "password1",
    "password123",
    "qwerty123",
    "iloveyou",
    "11111111",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "abc12345",
    "qwertyuiop",
    "1q2w3e4r",
    "superman",
    "trustno1",
    "passw0rd",
    "letmein1",
    "starwars",
    "whatever",
    "dragon12",
    "michael1",
    "computer",
    "zaq12wsx",
    "master12",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_follow_djangos_validators() {
        assert!(
            validate_password("a sensible passphrase", "alice", "alice@example.com").is_empty()
        );
        assert_eq!(validate_password("short", "bob", "").len(), 1);
        assert!(!validate_password("12345678901", "bob", "").is_empty());
        assert!(!validate_password("alice-is-great", "alice", "").is_empty());
        assert!(!validate_password("Password", "bob", "").is_empty());
        assert!(!validate_password(&"x".repeat(129), "bob", "").is_empty());
    }

    #[test]
    fn usernames_and_emails_are_checked() {
        assert!(validate_username("alice.b+c@d-e_f").is_empty());
        assert!(validate_username("ｊｏｓé").is_empty());
        assert!(!validate_username("has space").is_empty());
        assert!(!validate_username(&"a".repeat(151)).is_empty());
        // 10 characters, 180 after NFKC: too long for the stored form.
        assert!(!validate_username(&"ﷺ".repeat(10)).is_empty());
        assert!(validate_username(&"ﷺ".repeat(8)).is_empty());
        assert!(validate_email("").is_empty());
        assert!(validate_email("a@example.com").is_empty());
        for bad in ["a", "a@b", "@b.c", "a@b@c.d", "a b@c.d", "a@.com"] {
            assert!(!validate_email(bad).is_empty(), "{bad}");
        }
    }
}
