//! Redis processes of the test's own: one server to stop and restart under a running app, and a
//! real cluster ([`RedisCluster`]).

mod cluster;

pub use cluster::RedisCluster;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::ports::{free_port, wait_until_listening};

/// A `redis-server` of the test's own on a free loopback port, killed on drop.
pub struct RedisServer {
    port: u16,
    data_dir: Option<std::path::PathBuf>,
    /// More `redis-server` arguments, after the ones this sets.
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server; with `data_dir`, it persists every write (AOF, fsync always) there.
    pub fn start(data_dir: Option<&Path>) -> RedisServer {
        RedisServer::start_with(data_dir, &[])
    }

    /// As [`RedisServer::start`], with more `redis-server` arguments (`--maxmemory-policy
    /// allkeys-lru`, `--rename-command CONFIG ""`, …).
    pub fn start_with(data_dir: Option<&Path>, args: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            data_dir: data_dir.map(Path::to_path_buf),
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts it again on the same port (and data directory), and waits until it answers.
    pub fn restart(&mut self) {
        let mut command = Command::new("redis-server");
        command.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]);
        match &self.data_dir {
            Some(dir) => command
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir),
            None => command.args(["--appendonly", "no"]),
        };
        command.args(&self.args);
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (or set JWTD_TEST_REDIS_URL)");
        self.child = Some(child);
        wait_until_listening(self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
