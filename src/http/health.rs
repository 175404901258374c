//! Liveness and readiness for orchestrators and load balancers.

use std::collections::BTreeMap;
use std::time::Duration;

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::outage::{Outage, chain};
use crate::store::Readiness;

/// `status` is `ok` or `unavailable`; `checks` names each dependency's state.
#[derive(Debug, Object)]
pub struct HealthBody {
    pub status: String,
    pub checks: BTreeMap<String, String>,
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// Every dependency answers.
    #[oai(status = 200)]
    Ready(Json<HealthBody>),
    /// A dependency does not answer; see `checks`.
    #[oai(status = 503)]
    NotReady(Json<HealthBody>),
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub struct HealthApi {
    readiness: Readiness,
}

impl HealthApi {
    pub fn new(readiness: Readiness) -> HealthApi {
        HealthApi { readiness }
    }
}

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness: the process is up and serving HTTP.
    #[oai(path = "/health/live", method = "get", operation_id = "health_live")]
    async fn live(&self) -> Json<HealthBody> {
        Json(HealthBody {
            status: "ok".into(),
            checks: BTreeMap::new(),
        })
    }

    /// Readiness: the database and the revocation store both answer.
    #[oai(path = "/health/ready", method = "get", operation_id = "health_ready")]
    async fn ready(&self) -> ReadyResponse {
        let (database, revocation) = tokio::join!(
            checked(self.readiness.database()),
            checked(self.readiness.revocation_store()),
        );
        let checks = BTreeMap::from([
            ("database".to_owned(), database.to_owned()),
            ("revocation_store".to_owned(), revocation.to_owned()),
        ]);
        if checks.values().all(|state| state == "ok") {
            ReadyResponse::Ready(Json(HealthBody {
                status: "ok".into(),
                checks,
            }))
        } else {
            ReadyResponse::NotReady(Json(HealthBody {
                status: "unavailable".into(),
                checks,
            }))
        }
    }
}

async fn checked(ping: impl Future<Output = Result<(), Outage>>) -> &'static str {
    match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Ok(Ok(())) => "ok",
        Ok(Err(err)) => {
            tracing::warn!(error = %chain(&err), "readiness check failed");
            "unavailable"
        }
        Err(_) => "unavailable",
    }
}
