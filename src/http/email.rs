//! `/api/users/activation/`, `resend_activation/`, `reset_password/`, `reset_password_confirm/`:
//! Djoser's email flows (see `email`), under the Users tag.

use std::sync::Arc;

use poem::Request;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};

use super::ApiTags;
use super::body::{Fields, FromFields, JsonOrForm};
use super::client_address::TrustedProxies;
use super::error::ApiError;
use super::schemas::NoContent;
use crate::accounts::MAX_EMAIL_CHARS;
use crate::email::{EmailService, MailRequest};
use crate::password::MAX_PASSWORD_CHARS;

/// Longest `uid` or `token` read: a real one is far shorter.
const MAX_LINK_PART_CHARS: usize = 256;

/// The `uid` and `token` of an activation link.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ActivationRequest {
    pub uid: String,
    pub token: String,
}

impl Example for ActivationRequest {
    fn example() -> Self {
        ActivationRequest {
            uid: "MDE5M2E1YjItN2MxZS03ZjQwLWE4ZDItM2U0ZjVhNmI3Yzhk".into(),
            token: "t2x4k0-3q2c0ZkM1mX0eJ9p5m0r2h7w1v8u6s4a2b0c9d8e".into(),
        }
    }
}

impl FromFields for ActivationRequest {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        let uid = fields.string("uid", true, MAX_LINK_PART_CHARS);
        let token = fields.string("token", true, MAX_LINK_PART_CHARS);
        Some(ActivationRequest {
            uid: uid?,
            token: token?,
        })
    }
}

/// An email address that asks for a mail.
#[derive(Debug, Object)]
#[oai(example)]
pub struct EmailRequest {
    pub email: String,
}

impl Example for EmailRequest {
    fn example() -> Self {
        EmailRequest {
            email: "alice@example.com".into(),
        }
    }
}

impl FromFields for EmailRequest {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        let email = fields.string("email", true, MAX_EMAIL_CHARS);
        Some(EmailRequest { email: email? })
    }
}

/// The `uid` and `token` of a reset link, and the new password.
#[derive(Debug, Object)]
pub struct ResetConfirmRequest {
    pub uid: String,
    pub token: String,
    #[oai(write_only)]
    pub new_password: String,
}

impl FromFields for ResetConfirmRequest {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        let uid = fields.string("uid", true, MAX_LINK_PART_CHARS);
        let token = fields.string("token", true, MAX_LINK_PART_CHARS);
        let new_password = fields.string("new_password", false, MAX_PASSWORD_CHARS);
        Some(ResetConfirmRequest {
            uid: uid?,
            token: token?,
            new_password: new_password?,
        })
    }
}

pub struct EmailApi {
    email: Arc<EmailService>,
    proxies: Arc<TrustedProxies>,
}

impl EmailApi {
    pub fn new(email: Arc<EmailService>, proxies: Arc<TrustedProxies>) -> EmailApi {
        EmailApi { email, proxies }
    }

    async fn request(
        &self,
        kind: MailRequest,
        request: &Request,
        email: &str,
    ) -> Result<NoContent, ApiError> {
        let client = self.proxies.client_of(request);
        self.email.request(kind, email, &client).await?;
        Ok(NoContent::Done)
    }
}

#[OpenApi]
impl EmailApi {
    /// Activate an account with the `uid` and `token` of its activation link.
    ///
    /// A bad, used or expired link gets 400 `invalid_token`.
    #[oai(
        path = "/api/users/activation/",
        method = "post",
        operation_id = "users_activation",
        tag = "ApiTags::Users"
    )]
    async fn activation(&self, body: JsonOrForm<ActivationRequest>) -> Result<NoContent, ApiError> {
        self.email.activate(&body.0.uid, &body.0.token).await?;
        Ok(NoContent::Done)
    }

    /// Mail a new activation link to an inactive account's address.
    ///
    /// 204 for any well-formed address, whether it has an account or not. Throttled per client
    /// address (`email.requests_per_client`: 429 `throttled` with `Retry-After`) and per email
    /// address (`email.mails_per_address`: past it, 204 and nothing is sent).
    #[oai(
        path = "/api/users/resend_activation/",
        method = "post",
        operation_id = "users_resend_activation",
        tag = "ApiTags::Users"
    )]
    async fn resend_activation(
        &self,
        request: &Request,
        body: JsonOrForm<EmailRequest>,
    ) -> Result<NoContent, ApiError> {
        self.request(MailRequest::Activation, request, &body.0.email)
            .await
    }

    /// Mail a password-reset link to an account's address.
    ///
    /// 204 for any well-formed address, whether it has an account or not. Throttled per client
    /// address (`email.requests_per_client`: 429 `throttled` with `Retry-After`) and per email
    /// address (`email.mails_per_address`: past it, 204 and nothing is sent).
    #[oai(
        path = "/api/users/reset_password/",
        method = "post",
        operation_id = "users_reset_password",
        tag = "ApiTags::Users"
    )]
    async fn reset_password(
        &self,
        request: &Request,
        body: JsonOrForm<EmailRequest>,
    ) -> Result<NoContent, ApiError> {
        self.request(MailRequest::PasswordReset, request, &body.0.email)
            .await
    }

    /// Set a new password with the `uid` and `token` of a reset link; every token of the user
    /// is revoked.
    ///
    /// A bad, used or expired link gets 400 `invalid_token`; a weak password 400 `invalid`.
    #[oai(
        path = "/api/users/reset_password_confirm/",
        method = "post",
        operation_id = "users_reset_password_confirm",
        tag = "ApiTags::Users"
    )]
    async fn reset_password_confirm(
        &self,
        body: JsonOrForm<ResetConfirmRequest>,
    ) -> Result<NoContent, ApiError> {
        let ResetConfirmRequest {
            uid,
            token,
            new_password,
        } = body.0;
        self.email.confirm_reset(&uid, &token, new_password).await?;
        Ok(NoContent::Done)
    }
}
