//! What operators graph and alert on, served at `GET /metrics` in the OpenMetrics text format
//! (which Prometheus scrapes natively). One registry per running app, not a process-wide one:
//! tests run many apps in one process and each must see only its own counts.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How a token was issued.
#[derive(Debug, Clone, Copy)]
pub enum Grant {
    /// Username and password: `/api/token/` or OAuth's password grant.
    Password,
    ClientCredentials,
}

/// Why tokens were revoked.
#[derive(Debug, Clone, Copy)]
pub enum Revocation {
    /// A refresh token blacklisted (`/api/token/blacklist/`): its session.
    Logout,
    /// A spent refresh token came back: its session.
    Reuse,
    /// The user ended one of their sessions from the session list.
    SessionEnded,
    /// Every session of a user (logout-all, password change, deactivation, deletion).
    AllSessions,
    /// RFC 7009 revocation by an OAuth client.
    OAuthRevoke,
    /// Every client-credentials token of a deleted OAuth client.
    ClientDeleted,
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy)]
pub enum LoginFailure {
    /// Wrong username or password, or an inactive account, found by a password check.
    InvalidCredentials,
    /// Refused by the account's back-off without a password check (the client sees the same
    /// answer as for a wrong password).
    Locked,
    /// Too many attempts from the client's address.
    Throttled,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnsweredLabels {
    answered: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<OperationLabels>,
    tokens_issued: Family<GrantLabels, Counter>,
    tokens_refreshed: Counter,
    tokens_revoked: Family<ReasonLabels, Counter>,
    login_failures: Family<ReasonLabels, Counter>,
    reuse_detected: Counter,
    access_tokens_too_large: Counter,
    store_errors: Family<OperationLabels, Counter>,
    revocation_lookups: Family<AnsweredLabels, Counter>,
    revocation_lease_held: Gauge,
    email: EmailMetrics,
}

/// The email outbox (see `email`): what waits, what went, what failed.
#[derive(Default)]
struct EmailMetrics {
    queued: Gauge,
    oldest_age_seconds: Gauge,
    sent: Counter,
    failed: Family<ReasonLabels, Counter>,
}

/// 100 µs to about 6.5 s by doubling: verify sits at the bottom, a queued login near the top.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("jwtd"),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            tokens_issued: Family::default(),
            tokens_refreshed: Counter::default(),
            tokens_revoked: Family::default(),
            login_failures: Family::default(),
            reuse_detected: Counter::default(),
            access_tokens_too_large: Counter::default(),
            store_errors: Family::default(),
            revocation_lookups: Family::default(),
            revocation_lease_held: Gauge::default(),
            email: EmailMetrics::default(),
        };
        metrics.register();
        metrics
    }

    fn register(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "http_requests",
            "HTTP requests answered, by operation, method and status",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from the request's head to the response, by operation",
            self.request_seconds.clone(),
        );
        registry.register(
            "tokens_issued",
            "Token pairs issued at login, and client-credentials access tokens",
            self.tokens_issued.clone(),
        );
        registry.register(
            "tokens_refreshed",
            "Successful refreshes",
            self.tokens_refreshed.clone(),
        );
        registry.register(
            "tokens_revoked",
            "Revocations written, by reason",
            self.tokens_revoked.clone(),
        );
        registry.register(
            "login_failures",
            "Refused logins, by reason",
            self.login_failures.clone(),
        );
        registry.register(
            "refresh_reuse_detected",
            "Spent refresh tokens presented again (their sessions were revoked)",
            self.reuse_detected.clone(),
        );
        registry.register(
            "access_tokens_too_large",
            "Access tokens refused because the user's claims exceed jwt.max_access_token_bytes",
            self.access_tokens_too_large.clone(),
        );
        registry.register(
            "store_errors",
            "Requests refused with 503 because the database or Redis failed, by operation",
            self.store_errors.clone(),
        );
        registry.register(
            "revocation_lookups",
            "Verifies' revocation lookups, by where they were answered: lease (reused under this \
             instance's revocation lease) or store",
            self.revocation_lookups.clone(),
        );
        registry.register(
            "revocation_lease_held",
            "1 while this instance's last poll of the revocation store granted it a lease",
            self.revocation_lease_held.clone(),
        );
        self.register_email();
    }

    fn register_email(&mut self) {
        let (registry, email) = (&mut self.registry, &self.email);
        registry.register(
            "email_queued",
            "Mails in the outbox waiting to be sent (any instance's last look)",
            email.queued.clone(),
        );
        registry.register(
            "email_oldest_queued_age_seconds",
            "How long the oldest mail in the outbox has waited",
            email.oldest_age_seconds.clone(),
        );
        registry.register("email_sent", "Mails delivered", email.sent.clone());
        registry.register(
            "email_failed",
            "Failed deliveries, by reason: retry (tried again later) or permanent (given up)",
            email.failed.clone(),
        );
    }

    pub fn request_answered(
        &self,
        operation: &'static str,
        method: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        let labels = RequestLabels {
            operation,
            method,
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
    }

    pub fn store_failed(&self, operation: &'static str) {
        self.store_errors
            .get_or_create(&OperationLabels { operation })
            .inc();
    }

    /// The counters of verifies' revocation lookups answered under a lease and by the store,
    /// and the gauge of whether a lease is held.
    pub fn revocation_lease_metrics(&self) -> (Counter, Counter, Gauge) {
        let counter = |answered| {
            self.revocation_lookups
                .get_or_create(&AnsweredLabels { answered })
                .clone()
        };
        let held = self.revocation_lease_held.clone();
        (counter("lease"), counter("store"), held)
    }

    pub fn issued(&self, grant: Grant) {
        let grant = match grant {
            Grant::Password => "password",
            Grant::ClientCredentials => "client_credentials",
        };
        self.tokens_issued
            .get_or_create(&GrantLabels { grant })
            .inc();
    }

    pub fn refreshed(&self) {
        self.tokens_refreshed.inc();
    }

    pub fn revoked(&self, reason: Revocation) {
        let reason = match reason {
            Revocation::Logout => "logout",
            Revocation::Reuse => "reuse",
            Revocation::SessionEnded => "session_ended",
            Revocation::AllSessions => "all_sessions",
            Revocation::OAuthRevoke => "oauth_revoke",
            Revocation::ClientDeleted => "client_deleted",
        };
        self.tokens_revoked
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn login_failed(&self, failure: LoginFailure) {
        let reason = match failure {
            LoginFailure::InvalidCredentials => "invalid_credentials",
            LoginFailure::Locked => "locked",
            LoginFailure::Throttled => "throttled",
        };
        self.login_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn reuse_detected(&self) {
        self.reuse_detected.inc();
    }

    /// The outbox as a sender last saw it.
    pub fn email_backlog(&self, queued: u64, oldest_age: Duration) {
        let email = &self.email;
        email.queued.set(i64::try_from(queued).unwrap_or(i64::MAX));
        let age = i64::try_from(oldest_age.as_secs()).unwrap_or(i64::MAX);
        email.oldest_age_seconds.set(age);
    }

    pub fn email_sent(&self) {
        self.email.sent.inc();
    }

    /// A delivery failed; `permanent`: the mail is given up.
    pub fn email_failed(&self, permanent: bool) {
        let reason = if permanent { "permanent" } else { "retry" };
        self.email
            .failed
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Mails delivered so far by this instance (tests).
    pub fn emails_sent(&self) -> u64 {
        self.email.sent.get()
    }

    pub fn access_token_too_large(&self) {
        self.access_tokens_too_large.inc();
    }

    /// Everything, in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_appear_with_their_labels_in_openmetrics_text() {
        let metrics = Metrics::new();
        metrics.request_answered("obtain_token", "POST", 401, Duration::from_millis(30));
        metrics.login_failed(LoginFailure::InvalidCredentials);
        metrics.login_failed(LoginFailure::InvalidCredentials);
        metrics.revoked(Revocation::Reuse);
        let text = metrics.render();
        for line in [
            r#"jwtd_http_requests_total{operation="obtain_token",method="POST",status="401"} 1"#,
            r#"jwtd_http_request_duration_seconds_count{operation="obtain_token"} 1"#,
            r#"jwtd_login_failures_total{reason="invalid_credentials"} 2"#,
            r#"jwtd_tokens_revoked_total{reason="reuse"} 1"#,
            "jwtd_refresh_reuse_detected_total 0",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
    }
}
