//! A real Redis Cluster on loopback: three masters and a replica each, made with `redis-server
//! --cluster-enabled yes` and `redis-cli --cluster create`, killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;

pub struct RedisCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

struct Node {
    port: u16,
    child: Option<Child>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let nodes: Vec<Node> = (0..6).map(|_| Node::start(dir.path())).collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let created = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli must be installed");
        assert!(created.status.success(), "{created:?}");
        let cluster = RedisCluster { nodes, _dir: dir };
        cluster.wait_until_ok();
        cluster
    }

    /// `redis.url` for a cluster: every node, comma-separated.
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}", node.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every live node sees the cluster healthy and every slot served.
    fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .live()
            .all(|node| node.cli(&["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every replica has every write its master has (replication is asynchronous).
    pub fn wait_until_replicated(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for node in self.live() {
            let info = node.cli(&["info", "replication"]);
            if !info.contains("role:master") {
                continue;
            }
            let master_offset = field(&info, "master_repl_offset");
            loop {
                let info = node.cli(&["info", "replication"]);
                let replica = info
                    .lines()
                    .find(|line| line.starts_with("slave0:"))
                    .expect("every master has a replica");
                let offset = replica
                    .split(',')
                    .find_map(|part| part.strip_prefix("offset="))
                    .unwrap();
                if offset.parse::<u64>().unwrap() >= master_offset {
                    break;
                }
                assert!(Instant::now() < deadline, "replication did not catch up");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Kills the master serving `{hash_tag}`'s slot; returns its port. Its replica is promoted
    /// after the node timeout.
    pub fn kill_master_of(&mut self, hash_tag: &str) -> u16 {
        let any = self.live().next().unwrap();
        let slot: u16 = any
            .cli(&["cluster", "keyslot", &format!("{{{hash_tag}}}")])
            .trim()
            .parse()
            .unwrap();
        let port = any
            .cli(&["cluster", "nodes"])
            .lines()
            .find_map(|line| master_port_serving(line, slot))
            .expect("some master serves every slot");
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.port == port)
            .unwrap();
        node.kill();
        port
    }

    fn live(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|node| node.child.is_some())
    }
}

/// From a `CLUSTER NODES` line (`id ip:port@bus flags master ping pong epoch state slots…`),
/// the port of a live master serving `slot`.
fn master_port_serving(line: &str, slot: u16) -> Option<u16> {
    let parts: Vec<&str> = line.split_whitespace().collect();
    if !parts.get(2)?.contains("master") || parts.get(2)?.contains("fail") {
        return None;
    }
    let serves = parts.iter().skip(8).any(|range| {
        let (low, high) = range.split_once('-').unwrap_or((range, range));
        match (low.parse::<u16>(), high.parse::<u16>()) {
            (Ok(low), Ok(high)) => (low..=high).contains(&slot),
            _ => false,
        }
    });
    let address = parts.get(1)?.split('@').next()?;
    serves.then(|| address.rsplit(':').next()?.parse().ok())?
}

fn field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {info}"))
        .trim()
        .parse()
        .unwrap()
}

impl Node {
    fn start(dir: &Path) -> Node {
        let port = free_port();
        let node_dir = dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args([
                "--cluster-node-timeout",
                "3000",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&node_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        let node = Node {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !node.cli(&["ping"]).contains("PONG") {
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli must be installed");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// SIGKILL, as a crash.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}
