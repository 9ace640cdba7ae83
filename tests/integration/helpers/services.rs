//! What `scripts/test` provides: a Redis and a MongoDB (SecantusDB) to
//! share, redis-server and SecantusDB to start servers of a test's own, and
//! the web client's build.
//!
//! A test that needs any of these is marked
//! `#[cfg_attr(not(test_services), ignore = ...)]`: `cargo test` alone
//! leaves it out and counts it as ignored in its summary; under
//! `scripts/test` or CI (build.rs) it runs, and a missing service fails it
//! here, loudly.

use std::{path::PathBuf, sync::Arc, time::Duration};

use chatroom::{kv::Kv, store::Store};
use tempfile::TempDir;
use uuid::Uuid;

/// A service from the variable `scripts/test` exports.
pub fn service(variable: &str) -> String {
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("{variable} is not set: run the tests with scripts/test, which sets it"),
    }
}

/// The web client's build, which the server serves from `playground/dist`
/// in debug builds.
pub fn built_web_client() -> PathBuf {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playground/dist");
    assert!(
        dist.join("index.html").is_file(),
        "the web client is not built: run the tests with scripts/test, which builds it"
    );
    dist
}

/// A name no other test uses: database names and key prefixes.
pub fn unique_name(test: &str) -> String {
    let short = &Uuid::new_v4().simple().to_string()[..12];
    let test: String = test
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(24)
        .collect();
    format!("t_{test}_{short}")
}

/// A SQLite store in a fresh temporary dir, and the dir that must outlive it.
pub async fn sqlite_store() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let store =
        chatroom::store::SqliteStore::open(&dir.path().join("t.db"), Duration::from_secs(5))
            .await
            .expect("SQLite opens");
    (Arc::new(store), dir)
}

/// How long a store call of the store suite may take on MongoDB. The
/// suite checks what the store does, not how fast: its stand-in is about
/// ten times slower than mongod and serves every test running at once, and
/// eight writers racing for one room's seq were seen to need more than the
/// five seconds a deployment gets by default (`Unavailable`) while the
/// room-event tests loaded it too.
const MONGO_SUITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A MongoDB store on a database of its own.
pub async fn mongo_store(test: &str) -> Arc<dyn Store> {
    let uri = service("CHATROOM_TEST_MONGODB_URI");
    let store = chatroom::store::MongoStore::connect(&uri, &unique_name(test), MONGO_SUITE_TIMEOUT)
        .await
        .expect("MongoDB connects");
    Arc::new(store)
}

/// The variable naming the one Redis server `scripts/test` starts.
pub const REDIS: &str = "CHATROOM_TEST_REDIS_URL";
/// The variable naming the seed nodes of the Redis Cluster it starts.
pub const REDIS_CLUSTER: &str = "CHATROOM_TEST_REDIS_CLUSTER_URL";

/// A Redis kv on `redis` (`REDIS` or `REDIS_CLUSTER`) with a key prefix of its own.
pub async fn redis_kv(redis: &str, test: &str) -> Arc<dyn Kv> {
    let url = service(redis);
    let kv = chatroom::kv::RedisKv::connect(
        &url,
        &format!("{}:", unique_name(test)),
        Duration::from_secs(5),
    )
    .await
    .expect("Redis connects");
    Arc::new(kv)
}

/// A server process of the test's own (redis-server, or SecantusDB standing
/// in for MongoDB), to stop and start again on the same port on purpose.
pub struct ServerProcess {
    command: std::process::Command,
    port: u16,
    child: Option<std::process::Child>,
    _dir: TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A free port whose cluster bus port (10000 above it) is free too, both
/// below the kernel's ephemeral range (from 32768): a bus port in that
/// range could be taken by any test's outgoing connection before the node
/// binds it, and `redis-cli --cluster create` would wait for ever.
fn free_cluster_port() -> u16 {
    use rand::Rng;
    loop {
        let port = rand::thread_rng().gen_range(20_000..22_768);
        let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
}

fn redis_server(port: u16, dir: &TempDir) -> std::process::Command {
    let installed = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        installed,
        "redis-server is not installed: run the tests with scripts/test, which installs it"
    );
    let mut command = std::process::Command::new("redis-server");
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path());
    command
}

/// What `redis-cli` prints for `command` sent to the server on `port`.
/// Async: a test blocking a runtime thread while its servers recover from
/// a fault was seen to stall the whole runtime.
async fn redis_cli(port: u16, command: &[&str]) -> String {
    let output = tokio::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(command)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(10), output)
        .await
        .unwrap_or_else(|_| panic!("redis-cli {command:?} did not answer in 10 s"))
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl ServerProcess {
    /// redis-server on a free port.
    pub fn redis() -> Self {
        let (port, dir) = (free_port(), tempfile::tempdir().expect("a temporary dir"));
        let command = redis_server(port, &dir);
        Self::started(command, port, dir)
    }

    /// SecantusDB on a free port, keeping its data on disk so a restart
    /// finds it again.
    pub fn secantus() -> Self {
        let program = service("CHATROOM_TEST_SECANTUSD");
        let (port, dir) = (free_port(), tempfile::tempdir().expect("a temporary dir"));
        let config = dir.path().join("secantusd.toml");
        std::fs::write(&config, "").expect("an empty config");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).expect("a temporary dir for SecantusDB");
        let mut command = std::process::Command::new(program);
        command
            .arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--storage-path")
            .arg(dir.path().join("data"))
            .arg("--sync-on-commit")
            .env("TMPDIR", tmp);
        Self::started(command, port, dir)
    }

    fn started(mut command: std::process::Command, port: u16, dir: TempDir) -> Self {
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut process = Self {
            command,
            port,
            child: None,
            _dir: dir,
        };
        process.start();
        process
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start(&mut self) {
        let child = self.command.spawn().expect("the server starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not listen in 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server as an operator would (SIGTERM), waiting for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let terminated = std::process::Command::new("kill")
                .arg(child.id().to_string())
                .status()
                .is_ok_and(|status| status.success());
            if !terminated {
                child.kill().ok();
            }
            child.wait().ok();
        }
    }
}

impl ServerProcess {
    /// Kills the server as a crash would (SIGKILL): no goodbye to anyone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// A Redis Cluster of the test's own, as `scripts/test` starts one: three
/// masters with a replica each, failing a master over to its replica
/// within about two seconds of its death.
pub struct RedisCluster {
    nodes: Vec<ServerProcess>,
}

impl RedisCluster {
    pub async fn start() -> Self {
        let nodes: Vec<ServerProcess> = (0..6)
            .map(|_| {
                let (port, dir) = (free_cluster_port(), tempfile::tempdir().expect("a dir"));
                let mut command = redis_server(port, &dir);
                command
                    .args(["--cluster-enabled", "yes"])
                    .args(["--cluster-node-timeout", "1000"])
                    .args(["--cluster-config-file", "nodes.conf"])
                    // A master waits 5 s by default before it sends a new
                    // replica its data, and a replica never in sync cannot
                    // take over.
                    .args(["--repl-diskless-sync-delay", "0"]);
                ServerProcess::started(command, port, dir)
            })
            .collect();
        let mut create = tokio::process::Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        // It waits for the nodes to meet, for ever if they cannot.
        let status = tokio::time::timeout(Duration::from_secs(60), create.status())
            .await
            .expect("redis-cli --cluster create finishes within 60 s")
            .expect("redis-cli runs");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = Self { nodes };
        cluster.wait_until_serving().await;
        cluster
    }

    /// The seed URLs, comma-separated, as `CHATROOM_REDIS_URL` takes them.
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}/", node.port))
            .collect();
        urls.join(",")
    }

    /// Waits until every live node says the cluster is whole, so every
    /// slot has a master that answers, and every replica is in sync with
    /// its master: a replica that never was cannot take over when its
    /// master dies, and the master's slots then stay down for good.
    pub async fn wait_until_serving(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut whole = true;
            for node in self.nodes.iter().filter(|node| node.child.is_some()) {
                whole &= redis_cli(node.port, &["CLUSTER", "INFO"])
                    .await
                    .contains("cluster_state:ok");
                // Until the replica takes over, the others still name a
                // dead master.
                whole &= self.masters(node.port).await.iter().all(|(port, _)| {
                    self.nodes
                        .iter()
                        .any(|live| live.port == *port && live.child.is_some())
                });
                let replication = redis_cli(node.port, &["INFO", "replication"]).await;
                whole &= !replication.contains("role:slave")
                    || replication.contains("master_link_status:up");
            }
            if whole {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the Redis Cluster did not come to serve every slot with replicas in sync in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The masters that serve slots, as the node on `port` sees them:
    /// each one's port and slot ranges.
    async fn masters(&self, port: u16) -> Vec<(u16, Vec<(u16, u16)>)> {
        // Lines of CLUSTER NODES: id address flags master ping pong epoch state slots…
        redis_cli(port, &["CLUSTER", "NODES"])
            .await
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .filter(|fields| fields.get(2).is_some_and(|flags| flags.contains("master")))
            .filter_map(|fields| {
                let port = fields[1].split(['@', ':']).nth(1)?.parse().ok()?;
                let slots: Vec<(u16, u16)> = fields
                    .iter()
                    .skip(8)
                    .filter_map(|range| {
                        let (start, end) = range.split_once('-').unwrap_or((range, range));
                        Some((start.parse().ok()?, end.parse().ok()?))
                    })
                    .collect();
                (!slots.is_empty()).then_some((port, slots))
            })
            .collect()
    }

    /// Kills (SIGKILL) the master that serves `key`'s slot (a channel's
    /// name counts as a key for sharded pub/sub); its replica takes over.
    pub async fn kill_master_of(&mut self, key: &str) {
        let live = self
            .nodes
            .iter()
            .find(|node| node.child.is_some())
            .expect("a live node");
        let slot: u16 = redis_cli(live.port, &["CLUSTER", "KEYSLOT", key])
            .await
            .trim()
            .parse()
            .expect("a slot");
        let (port, _) = self
            .masters(live.port)
            .await
            .into_iter()
            .find(|(_, slots)| {
                slots
                    .iter()
                    .any(|(start, end)| (start..=end).contains(&&slot))
            })
            .expect("a master serves the slot");
        self.nodes
            .iter_mut()
            .find(|node| node.port == port)
            .expect("the master is one of ours")
            .kill();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
