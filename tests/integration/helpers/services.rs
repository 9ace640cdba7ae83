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

/// A Redis kv with a key prefix of its own.
pub async fn redis_kv(test: &str) -> Arc<dyn Kv> {
    let url = service("CHATROOM_TEST_REDIS_URL");
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

impl ServerProcess {
    /// redis-server on a free port.
    pub fn redis() -> Self {
        let installed = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok();
        assert!(
            installed,
            "redis-server is not installed: run the tests with scripts/test, which installs it"
        );
        let (port, dir) = (free_port(), tempfile::tempdir().expect("a temporary dir"));
        let mut command = std::process::Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path());
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

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
