//! Liveness and readiness for orchestrators and load balancers.

use std::collections::BTreeMap;
use std::time::Duration;

use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Serialize;

use super::ApiTags;
use super::direct_json::{DirectJson, SizedJson, object_overhead};
use crate::outage::{Outage, chain};
use crate::store::Readiness;

/// `status` is `ok` or `unavailable`; `checks` names each dependency's state.
#[derive(Debug, Object, Serialize)]
pub struct HealthBody {
    pub status: String,
    pub checks: BTreeMap<String, String>,
}

impl SizedJson for HealthBody {
    fn json_len(&self) -> usize {
        // Each check is a `"name":"state",` of its own, inside braces where the overhead
        // counted two quotes.
        let checks: usize = self.checks.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
        self.status.len() + checks + 2 + object_overhead(&["status", "checks"])
    }
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// Every dependency answers.
    #[oai(status = 200)]
    Ready(DirectJson<HealthBody>),
    /// A dependency does not answer; see `checks`.
    #[oai(status = 503)]
    NotReady(DirectJson<HealthBody>),
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
    async fn live(&self) -> DirectJson<HealthBody> {
        DirectJson(HealthBody {
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
            ReadyResponse::Ready(DirectJson(HealthBody {
                status: "ok".into(),
                checks,
            }))
        } else {
            ReadyResponse::NotReady(DirectJson(HealthBody {
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
