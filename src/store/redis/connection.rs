//! The connection under the Redis store: one server or a Redis Cluster behind one type,
//! connected on first use, with the key prefix and one retry of an idempotent command after the
//! connection dropped.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{Cmd, ErrorKind, Pipeline, RedisFuture, ServerErrorKind, Value};
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;

use crate::config::RedisSettings;
use crate::outage::Outage;

/// The connection and the key prefix, shared by the store and its lookup readers.
pub(super) struct Redis {
    target: Target,
    /// Connected on first use, so jwtd starts (and answers 503) while Redis is down; both kinds
    /// of connection reconnect by themselves afterwards (a cluster connection also follows
    /// failovers and slot moves).
    connection: OnceCell<Connection>,
    pub(super) prefix: String,
}

/// What `redis.url` names: one server, or a cluster's seed nodes.
enum Target {
    Single(redis::Client, ConnectionManagerConfig),
    Cluster(ClusterClient),
}

/// A connection to either; cheap to clone (both multiplex one set of sockets).
#[derive(Clone)]
pub(super) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

impl Target {
    fn from_settings(settings: &RedisSettings) -> Result<Target, Outage> {
        let invalid = |e: redis::RedisError| Outage::internal(format!("redis.url: {e}"));
        let url = settings.url.expose_secret();
        if settings.cluster {
            let seeds: Vec<&str> = url.split(',').map(str::trim).collect();
            let client = ClusterClient::builder(seeds)
                .connection_timeout(settings.connect_timeout)
                .response_timeout(settings.response_timeout)
                .retries(1)
                .build()
                .map_err(invalid)?;
            return Ok(Target::Cluster(client));
        }
        let client = redis::Client::open(url).map_err(invalid)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(settings.connect_timeout);
        Ok(Target::Single(client, config))
    }

    /// `host:port` of a single server, for the log (`redis.url` may hold a password).
    fn server_address(&self) -> String {
        match self {
            Target::Single(client, _) => client.get_connection_info().addr().to_string(),
            Target::Cluster(_) => "the cluster".into(),
        }
    }

    async fn connect(&self) -> redis::RedisResult<Connection> {
        Ok(match self {
            Target::Single(client, config) => Connection::Single(
                ConnectionManager::new_with_config(client.clone(), config.clone()).await?,
            ),
            Target::Cluster(client) => Connection::Cluster(client.get_async_connection().await?),
        })
    }
}

impl Redis {
    pub(super) fn new(settings: &RedisSettings) -> Result<Redis, Outage> {
        Ok(Redis {
            target: Target::from_settings(settings)?,
            connection: OnceCell::new(),
            prefix: format!("{}:", settings.key_prefix),
        })
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    pub(super) async fn connection(&self) -> Result<Connection, Outage> {
        let connection = self
            .connection
            .get_or_try_init(|| self.target.connect())
            .await?;
        Ok(connection.clone())
    }

    /// Runs `cmd` on the server, or on every master of a cluster (each that the cluster
    /// connection reaches): each node's address with its own answer, an error included (a
    /// renamed or forbidden command), so that one refusal does not hide the others' answers.
    pub(super) async fn on_every_master(
        &self,
        cmd: &Cmd,
    ) -> Result<Vec<(String, redis::RedisResult<Value>)>, Outage> {
        let mut connection = self.connection().await?;
        let Connection::Cluster(cluster) = &mut connection else {
            let node = self.target.server_address();
            return Ok(vec![(node, cmd.query_async(&mut connection).await)]);
        };
        let masters = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        // Without a response policy, the answer maps each node's address to its reply.
        let answers = cluster.route_command(cmd.clone(), masters).await?;
        let answers = answers.into_map_iter().map_err(|value| {
            Outage::internal(format!("a command on every master answered {value:?}"))
        })?;
        Ok(answers
            .map(|(node, answer)| {
                let node = redis::from_redis_value::<String>(node)
                    .unwrap_or_else(|_| "a cluster node".into());
                (node, answer.extract_error())
            })
            .collect())
    }

    pub(super) fn key(&self, key: String) -> String {
        let mut prefixed = String::with_capacity(self.prefix.len() + key.len());
        prefixed.push_str(&self.prefix);
        prefixed.push_str(&key);
        prefixed
    }

    /// Runs an idempotent command, once more if the connection had dropped: the manager's
    /// first command after a reconnect fails with a broken pipe and is not retried by it.
    pub(super) async fn idempotent<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, Outage> {
        let mut connection = self.connection().await?;
        match cmd.query_async(&mut connection).await {
            Err(err) if err.is_io_error() || err.is_connection_dropped() => {
                Ok(cmd.query_async(&mut connection).await?)
            }
            result => Ok(result?),
        }
    }
}

/// Runs `evalsha` (an `EVALSHA` of `script`'s hash, with its keys and arguments), loading the
/// script first when Redis does not hold it (a restart, `SCRIPT FLUSH`), as
/// `ScriptInvocation::invoke_async` does, which first copies every key and argument once more.
pub(super) async fn run_script<T: redis::FromRedisValue>(
    script: &redis::Script,
    evalsha: &Cmd,
    connection: &mut Connection,
) -> redis::RedisResult<T> {
    match evalsha.query_async(connection).await {
        Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            script.prepare_invoke().load_async(connection).await?;
            evalsha.query_async(connection).await
        }
        answer => answer,
    }
}
