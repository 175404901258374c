//! The one error for "the service could not do its part": a store that cannot be reached, a
//! flood of password hashes, or an internal failure. Each domain error embeds it once, and its
//! cause travels with it (`#[source]`) until the HTTP layer logs the whole chain.

use std::error::Error;
use std::sync::Arc;

/// What caused an outage. Shared, so that one failed store read can fail every lookup that
/// joined it with the same cause.
pub type Cause = Arc<dyn Error + Send + Sync>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Outage {
    /// A store (database, Redis) cannot be reached or did not answer in time: 503, fail closed.
    #[error("store unavailable")]
    Unavailable(#[source] Cause),
    /// Every password-hashing slot stayed busy: a flood of logins, not a failing store (503).
    #[error("password hashing busy")]
    Busy(#[source] Cause),
    /// A bug or a corrupt entry: 500, logged with an id.
    #[error("internal failure")]
    Internal(#[source] Cause),
}

impl Outage {
    pub fn unavailable(cause: impl Into<Box<dyn Error + Send + Sync>>) -> Outage {
        Outage::Unavailable(Arc::from(cause.into()))
    }

    pub fn busy(cause: impl Into<Box<dyn Error + Send + Sync>>) -> Outage {
        Outage::Busy(Arc::from(cause.into()))
    }

    pub fn internal(cause: impl Into<Box<dyn Error + Send + Sync>>) -> Outage {
        Outage::Internal(Arc::from(cause.into()))
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, Outage::Unavailable(_))
    }
}

/// An error and every cause under it, `: `-separated: what a log line needs to be useful. A
/// cause whose text its error already shows (many libraries print their source in their own
/// message) is not repeated.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connecting to 127.0.0.1:5432")]
    struct Connect(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outage = Outage::unavailable(Connect(io));
        assert_eq!(
            chain(&outage),
            "store unavailable: connecting to 127.0.0.1:5432: refused"
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("pool: {0}")]
    struct SaysItsSource(#[source] std::io::Error);

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::other("timed out");
        let outage = Outage::unavailable(SaysItsSource(io));
        assert_eq!(chain(&outage), "store unavailable: pool: timed out");
    }

    #[test]
    fn a_message_is_a_cause_too() {
        let outage = Outage::internal(format!("client {} has a corrupt row", "ab"));
        assert_eq!(
            chain(&outage),
            "internal failure: client ab has a corrupt row"
        );
    }
}
