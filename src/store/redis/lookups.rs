//! The reader behind verify's batched revocation lookups (`store::lookups`) on a single Redis
//! server: the keys of every lookup waiting, read with one `MGET`.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::connection::Redis;
use super::unexpected_answer;
use crate::outage::Outage;
use crate::store::lookups::ReadEntries;

/// What the lookup readers read with: one `MGET`.
pub(super) struct RedisEntries(pub Arc<Redis>);

#[async_trait]
impl ReadEntries for RedisEntries {
    async fn read_entries(&self, keys: &[&str]) -> Result<HashMap<String, String>, Outage> {
        let mut cmd = redis::cmd("MGET");
        // The command copies each argument: one buffer serves every key (`format!` per key
        // cost more than the rest of building the command).
        let mut prefixed = String::new();
        for key in keys {
            prefixed.clear();
            prefixed.push_str(&self.0.prefix);
            prefixed.push_str(key);
            cmd.arg(prefixed.as_str());
        }
        let values: Vec<Option<String>> = self.0.idempotent(&cmd).await?;
        if values.len() != keys.len() {
            return Err(unexpected_answer("MGET", values.len()));
        }
        let found = keys.iter().zip(values);
        Ok(found
            .filter_map(|(key, value)| Some(((*key).to_owned(), value?)))
            .collect())
    }
}
