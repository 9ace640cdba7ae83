//! Every setting of the server, in one struct.
//!
//! Each field is both a command-line flag and a `CHATROOM_*` environment
//! variable (API.md's configuration table); [`Config::default`] gives the same
//! defaults without reading the environment, so tests build the app from a
//! value they control.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_DATA_DIR: &str = "./data";
const DEFAULT_MONGODB_DATABASE: &str = "chatroom";
const DEFAULT_REDIS_PREFIX: &str = "chatroom:";
const DEFAULT_MAIL_FROM: &str = "chatroom <noreply@localhost>";
const DEFAULT_JWT_TTL_SECS: u64 = 24 * 60 * 60;
const DEFAULT_CODE_TTL_SECS: u64 = 300;
const DEFAULT_CODE_RESEND_SECS: u64 = 60;
const DEFAULT_CODE_MAX_TRIES: u32 = 5;
const DEFAULT_STORE_TIMEOUT_SECS: u64 = 5;
const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
const DEFAULT_MAX_DEPTH: usize = 12;
const DEFAULT_MAX_COMPLEXITY: usize = 2000;
const DEFAULT_TOPIC_BUFFER: usize = 1024;

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to serve on.
    #[arg(long, env = "CHATROOM_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Where the embedded store, the dev outbox and a generated dev JWT secret live.
    #[arg(long, env = "CHATROOM_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,

    /// MongoDB connection string; unset: the embedded SQLite store.
    #[arg(long, env = "CHATROOM_MONGODB_URI")]
    pub mongodb_uri: Option<String>,

    /// MongoDB database name.
    #[arg(long, env = "CHATROOM_MONGODB_DATABASE", default_value = DEFAULT_MONGODB_DATABASE)]
    pub mongodb_database: String,

    /// Redis for codes, rate limits and cross-instance fan-out; unset: in-process.
    #[arg(long, env = "CHATROOM_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel, so deployments (and tests) can share one Redis.
    #[arg(long, env = "CHATROOM_REDIS_PREFIX", default_value = DEFAULT_REDIS_PREFIX)]
    pub redis_prefix: String,

    /// SMTP server, e.g. `smtps://user:pass@smtp.example.com:465` or
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS); unset: the dev outbox.
    #[arg(long, env = "CHATROOM_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender address of outgoing mail.
    #[arg(long, env = "CHATROOM_MAIL_FROM", default_value = DEFAULT_MAIL_FROM)]
    pub mail_from: String,

    /// Without SMTP, each mail is written here as one `.eml` file; default `<data dir>/outbox`.
    #[arg(long, env = "CHATROOM_MAIL_OUTBOX")]
    pub mail_outbox: Option<PathBuf>,

    /// HS256 secret; unset: generated once and kept in `<data dir>/jwt_secret` (mode 0600).
    #[arg(long, env = "CHATROOM_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Lifetime of an issued token, in seconds.
    #[arg(long, env = "CHATROOM_JWT_TTL", default_value_t = DEFAULT_JWT_TTL_SECS)]
    pub jwt_ttl_secs: u64,

    /// How long an email code stays valid, in seconds.
    #[arg(long, env = "CHATROOM_CODE_TTL", default_value_t = DEFAULT_CODE_TTL_SECS)]
    pub code_ttl_secs: u64,

    /// Minimum time between two codes for one address, in seconds.
    #[arg(long, env = "CHATROOM_CODE_RESEND", default_value_t = DEFAULT_CODE_RESEND_SECS)]
    pub code_resend_secs: u64,

    /// Wrong tries after which a code is void.
    #[arg(long, env = "CHATROOM_CODE_MAX_TRIES", default_value_t = DEFAULT_CODE_MAX_TRIES)]
    pub code_max_tries: u32,

    /// Bound on one store operation (MongoDB server selection and socket timeouts,
    /// SQLite busy wait), in seconds.
    #[arg(long, env = "CHATROOM_STORE_TIMEOUT", default_value_t = DEFAULT_STORE_TIMEOUT_SECS)]
    pub store_timeout_secs: u64,

    /// Largest accepted HTTP request body, in bytes (larger: HTTP 413).
    #[arg(long, env = "CHATROOM_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Deepest accepted query, counting every selection.
    #[arg(long, env = "CHATROOM_MAX_DEPTH", default_value_t = DEFAULT_MAX_DEPTH)]
    pub max_depth: usize,

    /// Largest accepted query complexity (each field 1, plus its children).
    #[arg(long, env = "CHATROOM_MAX_COMPLEXITY", default_value_t = DEFAULT_MAX_COMPLEXITY)]
    pub max_complexity: usize,

    /// Events a live topic buffers for its slowest local subscriber; one that
    /// falls further behind catches up from the store (more memory, fewer reads).
    #[arg(long, env = "CHATROOM_TOPIC_BUFFER", default_value_t = DEFAULT_TOPIC_BUFFER)]
    pub topic_buffer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("the default address parses"),
            data_dir: DEFAULT_DATA_DIR.into(),
            mongodb_uri: None,
            mongodb_database: DEFAULT_MONGODB_DATABASE.into(),
            redis_url: None,
            redis_prefix: DEFAULT_REDIS_PREFIX.into(),
            smtp_url: None,
            mail_from: DEFAULT_MAIL_FROM.into(),
            mail_outbox: None,
            jwt_secret: None,
            jwt_ttl_secs: DEFAULT_JWT_TTL_SECS,
            code_ttl_secs: DEFAULT_CODE_TTL_SECS,
            code_resend_secs: DEFAULT_CODE_RESEND_SECS,
            code_max_tries: DEFAULT_CODE_MAX_TRIES,
            store_timeout_secs: DEFAULT_STORE_TIMEOUT_SECS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
            max_complexity: DEFAULT_MAX_COMPLEXITY,
            topic_buffer: DEFAULT_TOPIC_BUFFER,
        }
    }
}

impl Config {
    pub fn outbox_dir(&self) -> PathBuf {
        self.mail_outbox
            .clone()
            .unwrap_or_else(|| self.data_dir.join("outbox"))
    }

    pub fn store_timeout(&self) -> Duration {
        Duration::from_secs(self.store_timeout_secs)
    }
}
