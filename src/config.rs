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
const DEFAULT_TOPIC_BUFFER: usize = 1024;
const DEFAULT_SHUTDOWN_SECS: u64 = 10;
const DEFAULT_PRESENCE_TIMEOUT_SECS: u64 = 60;
const DEFAULT_DIGEST_AFTER_SECS: u64 = 1800;
const DEFAULT_DIGESTS_PER_DAY: u32 = 4;

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
    /// Several URLs, comma-separated, are seed nodes of a Redis Cluster.
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

    /// Events a live topic buffers for its slowest local subscriber; one that
    /// falls further behind catches up from the store (more memory, fewer reads).
    #[arg(long, env = "CHATROOM_TOPIC_BUFFER", default_value_t = DEFAULT_TOPIC_BUFFER)]
    pub topic_buffer: usize,

    /// Origins (`scheme://host[:port]`, comma-separated) whose pages may call
    /// the API and open WebSockets, besides the server's own origin and
    /// localhost (allowed for development).
    #[arg(long, env = "CHATROOM_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Serve the schema's introspection (`__schema`, `__type`): IDEs and
    /// code generators need it; a closed deployment may turn it off.
    #[arg(long, env = "CHATROOM_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub introspection: bool,

    /// Development mode: accepts a JWT secret shorter than 32 bytes.
    #[arg(long, env = "CHATROOM_DEV", default_value_t = false, action = clap::ArgAction::Set)]
    pub dev: bool,

    /// Take the client address from the last `X-Forwarded-For` entry: only
    /// behind a proxy that sets it, or clients could pick their own address.
    #[arg(long, env = "CHATROOM_TRUST_FORWARDED_FOR", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_forwarded_for: bool,

    /// On SIGTERM/SIGINT, how long requests in flight and sockets get to
    /// finish before the process exits anyway, in seconds.
    #[arg(long, env = "CHATROOM_SHUTDOWN_TIMEOUT", default_value_t = DEFAULT_SHUTDOWN_SECS)]
    pub shutdown_timeout_secs: u64,

    /// How long after an instance stops answering (killed, cut off) its
    /// users are taken offline on the others, in seconds; each instance
    /// renews its users' presence three times in this time.
    #[arg(long, env = "CHATROOM_PRESENCE_TIMEOUT", default_value_t = DEFAULT_PRESENCE_TIMEOUT_SECS)]
    pub presence_timeout_secs: u64,

    /// Seconds without an open connection after which a user with unread
    /// messages gets one digest mail; 0 turns digests off.
    #[arg(long, env = "CHATROOM_DIGEST_AFTER", default_value_t = DEFAULT_DIGEST_AFTER_SECS)]
    pub digest_after_secs: u64,

    /// Most digest mails one user gets in a day, however often they come
    /// and go.
    #[arg(long, env = "CHATROOM_DIGESTS_PER_DAY", default_value_t = DEFAULT_DIGESTS_PER_DAY)]
    pub digests_per_day: u32,

    /// Where people reach the web client, for links in mail; unset: the
    /// listen address over http.
    #[arg(long, env = "CHATROOM_PUBLIC_URL")]
    pub public_url: Option<String>,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub rates: RateLimits,
}

/// What one request, message or connection may hold (API.md's limits).
#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Largest accepted HTTP request body, in bytes (larger: HTTP 413).
    #[arg(long, env = "CHATROOM_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Deepest accepted query, counting every selection.
    #[arg(long, env = "CHATROOM_MAX_DEPTH", default_value_t = 12)]
    pub max_depth: usize,

    /// Largest accepted query complexity (each field 1, plus its children).
    #[arg(long, env = "CHATROOM_MAX_COMPLEXITY", default_value_t = 2000)]
    pub max_complexity: usize,

    /// Largest response to one operation, in bytes; a larger one is only an
    /// error (`BAD_USER_INPUT`).
    #[arg(long, env = "CHATROOM_MAX_RESPONSE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_response_bytes: usize,

    /// Most operations in one batched HTTP request; 0 turns batching off.
    #[arg(long, env = "CHATROOM_MAX_BATCH", default_value_t = 10)]
    pub max_batch: usize,

    /// Largest WebSocket message, in bytes (larger: the socket closes with 1009).
    #[arg(long, env = "CHATROOM_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,

    /// Largest page (`first`, `last`, `searchUsers.first`).
    #[arg(long, env = "CHATROOM_MAX_PAGE_SIZE", default_value_t = 100)]
    pub max_page_size: i32,

    /// Longest message, in characters.
    #[arg(long, env = "CHATROOM_MAX_MESSAGE_CHARS", default_value_t = 4000)]
    pub max_message_chars: usize,

    /// Rooms (groups and friends' PRIVATE rooms) one user may belong to.
    #[arg(long, env = "CHATROOM_MAX_ROOMS_PER_USER", default_value_t = 1000)]
    pub max_rooms_per_user: usize,

    /// Members one GROUP room may have.
    #[arg(long, env = "CHATROOM_MAX_GROUP_MEMBERS", default_value_t = 1000)]
    pub max_group_members: usize,

    /// Usernames one createGroup or addMembers may name.
    #[arg(
        long,
        env = "CHATROOM_MAX_USERNAMES_PER_REQUEST",
        default_value_t = 100
    )]
    pub max_usernames_per_request: usize,

    /// Open connections (HTTP and WebSocket) this instance serves; more get
    /// HTTP 503. Unset: the process's open-file limit, raised to its hard
    /// limit at start, less a reserve for the store, Redis and the probes.
    #[arg(long, env = "CHATROOM_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Open WebSockets per client address; more upgrades get HTTP 429.
    #[arg(long, env = "CHATROOM_MAX_SOCKETS_PER_ADDRESS", default_value_t = 200)]
    pub max_sockets_per_address: usize,

    /// Operations (subscriptions above all) one WebSocket may run at once.
    #[arg(
        long,
        env = "CHATROOM_MAX_OPERATIONS_PER_SOCKET",
        default_value_t = 100
    )]
    pub max_operations_per_socket: usize,

    /// Frames per second one WebSocket may send (twice that in a burst);
    /// a socket that sends faster is closed with 1008.
    #[arg(long, env = "CHATROOM_MAX_FRAMES_PER_SECOND", default_value_t = 50)]
    pub max_frames_per_second: u32,

    /// Seconds a new WebSocket has to send its `connection_init` (closed
    /// with 4408 after).
    #[arg(long, env = "CHATROOM_INIT_TIMEOUT_SECS", default_value_t = 5)]
    pub init_timeout_secs: u64,

    /// Seconds between the server's pings on a WebSocket.
    #[arg(long, env = "CHATROOM_PING_SECS", default_value_t = 30)]
    pub ping_secs: u64,

    /// Seconds a WebSocket may stay silent (no frame, no pong) before it is
    /// taken for half-open and closed (1001).
    #[arg(long, env = "CHATROOM_IDLE_TIMEOUT_SECS", default_value_t = 75)]
    pub idle_timeout_secs: u64,

    /// Seconds a WebSocket may take to accept what the server writes;
    /// a client slower than that is closed with 1013 and resumes when it
    /// reconnects. Until then it only holds the socket's own buffer: what it
    /// owes is read from the store once it catches up.
    #[arg(long, env = "CHATROOM_SLOW_CLIENT_SECS", default_value_t = 10)]
    pub slow_client_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_depth: 12,
            max_complexity: 2000,
            max_response_bytes: 4 * 1024 * 1024,
            max_batch: 10,
            max_frame_bytes: 64 * 1024,
            max_page_size: 100,
            max_message_chars: 4000,
            max_rooms_per_user: 1000,
            max_group_members: 1000,
            max_usernames_per_request: 100,
            max_connections: None,
            max_sockets_per_address: 200,
            max_operations_per_socket: 100,
            max_frames_per_second: 50,
            init_timeout_secs: 5,
            ping_secs: 30,
            idle_timeout_secs: 75,
            slow_client_secs: 10,
        }
    }
}

/// How often a client may do costly or abusable things. Counted per
/// instance, or across instances when Redis is configured.
#[derive(Debug, Clone, Args)]
pub struct RateLimits {
    /// Failed logins per username in 15 minutes; then even the right
    /// password is refused until the window ends.
    #[arg(
        long,
        env = "CHATROOM_LOGIN_FAILURES_PER_USERNAME",
        default_value_t = 5
    )]
    pub login_failures_per_username: u32,

    /// Failed logins per client address in 15 minutes.
    #[arg(
        long,
        env = "CHATROOM_LOGIN_FAILURES_PER_ADDRESS",
        default_value_t = 30
    )]
    pub login_failures_per_address: u32,

    /// Email codes per client address per hour (each address also waits
    /// `CHATROOM_CODE_RESEND` between two codes).
    #[arg(long, env = "CHATROOM_CODES_PER_ADDRESS", default_value_t = 20)]
    pub codes_per_address: u32,

    /// Messages per second per user, sustained.
    #[arg(long, env = "CHATROOM_MESSAGES_PER_SECOND", default_value_t = 20)]
    pub messages_per_second: u32,

    /// Messages a user may send at once before the per-second rate applies.
    #[arg(long, env = "CHATROOM_MESSAGE_BURST", default_value_t = 40)]
    pub message_burst: u32,

    /// Other writing mutations (createGroup, addMembers, addFriend,
    /// updateProfile, ...) per second per user, sustained.
    #[arg(long, env = "CHATROOM_WRITES_PER_SECOND", default_value_t = 5)]
    pub writes_per_second: u32,

    /// Other writing mutations a user may make at once.
    #[arg(long, env = "CHATROOM_WRITE_BURST", default_value_t = 30)]
    pub write_burst: u32,

    /// `searchMessages` per second per user, sustained.
    #[arg(long, env = "CHATROOM_SEARCHES_PER_SECOND", default_value_t = 2)]
    pub searches_per_second: u32,

    /// `searchMessages` a user may run at once before the per-second rate
    /// applies: a client searching as its user types.
    #[arg(long, env = "CHATROOM_SEARCH_BURST", default_value_t = 20)]
    pub search_burst: u32,

    /// Mutations of any kind per second per client address, sustained: what
    /// one address may do however many accounts it uses.
    #[arg(
        long,
        env = "CHATROOM_ADDRESS_WRITES_PER_SECOND",
        default_value_t = 100
    )]
    pub address_writes_per_second: u32,

    /// Mutations of any kind a client address may make at once.
    #[arg(long, env = "CHATROOM_ADDRESS_WRITE_BURST", default_value_t = 300)]
    pub address_write_burst: u32,

    /// Registrations per client address per hour.
    #[arg(long, env = "CHATROOM_REGISTRATIONS_PER_ADDRESS", default_value_t = 20)]
    pub registrations_per_address: u32,

    /// New WebSocket connections per client address per second, sustained.
    #[arg(long, env = "CHATROOM_CONNECTIONS_PER_SECOND", default_value_t = 10)]
    pub connections_per_second: u32,

    /// New WebSocket connections a client address may open at once.
    #[arg(long, env = "CHATROOM_CONNECTION_BURST", default_value_t = 50)]
    pub connection_burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            login_failures_per_username: 5,
            login_failures_per_address: 30,
            codes_per_address: 20,
            messages_per_second: 20,
            message_burst: 40,
            writes_per_second: 5,
            write_burst: 30,
            searches_per_second: 2,
            search_burst: 20,
            address_writes_per_second: 100,
            address_write_burst: 300,
            registrations_per_address: 20,
            connections_per_second: 10,
            connection_burst: 50,
        }
    }
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
            topic_buffer: DEFAULT_TOPIC_BUFFER,
            allowed_origins: Vec::new(),
            introspection: true,
            dev: false,
            trust_forwarded_for: false,
            shutdown_timeout_secs: DEFAULT_SHUTDOWN_SECS,
            presence_timeout_secs: DEFAULT_PRESENCE_TIMEOUT_SECS,
            digest_after_secs: DEFAULT_DIGEST_AFTER_SECS,
            digests_per_day: DEFAULT_DIGESTS_PER_DAY,
            public_url: None,
            limits: Limits::default(),
            rates: RateLimits::default(),
        }
    }
}

impl Config {
    /// Refuses settings that cannot work or are unsafe, saying which.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(secret) = &self.jwt_secret {
            anyhow::ensure!(
                secret.len() >= 32 || self.dev,
                "CHATROOM_JWT_SECRET is {} bytes; use at least 32 random bytes \
                 (or CHATROOM_DEV=true for development)",
                secret.len()
            );
        }
        for (name, value) in self.counts() {
            anyhow::ensure!(value >= 1, "{name} must be at least 1, not {value}");
        }
        for origin in &self.allowed_origins {
            url::Url::parse(origin)
                .map_err(|e| anyhow::anyhow!("CHATROOM_ALLOWED_ORIGINS: {origin:?}: {e}"))?;
        }
        // A brace would make the prefix a hash tag, putting every key of a
        // cluster in one slot, and break the tags the keys carry themselves.
        anyhow::ensure!(
            !self.redis_prefix.contains(['{', '}']),
            "CHATROOM_REDIS_PREFIX must not contain braces: {:?}",
            self.redis_prefix
        );
        if let Some(urls) = &self.redis_url {
            let seeds = crate::redis_link::seeds(urls);
            anyhow::ensure!(!seeds.is_empty(), "CHATROOM_REDIS_URL names no server");
            for seed in seeds {
                redis::IntoConnectionInfo::into_connection_info(seed)
                    .map_err(|e| anyhow::anyhow!("CHATROOM_REDIS_URL: {seed:?}: {e}"))?;
            }
        }
        if let Some(url) = &self.public_url {
            url::Url::parse(url)
                .map_err(|e| anyhow::anyhow!("CHATROOM_PUBLIC_URL: {url:?}: {e}"))?;
        }
        Ok(())
    }

    /// Every setting that counts something a server cannot do with none of:
    /// a zero there would refuse everyone, or divide by zero.
    fn counts(&self) -> Vec<(&'static str, i64)> {
        let (limits, rates) = (&self.limits, &self.rates);
        let wide = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        let size = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        vec![
            ("CHATROOM_JWT_TTL", wide(self.jwt_ttl_secs)),
            ("CHATROOM_CODE_TTL", wide(self.code_ttl_secs)),
            ("CHATROOM_CODE_MAX_TRIES", self.code_max_tries.into()),
            ("CHATROOM_STORE_TIMEOUT", wide(self.store_timeout_secs)),
            (
                "CHATROOM_PRESENCE_TIMEOUT",
                wide(self.presence_timeout_secs),
            ),
            ("CHATROOM_DIGESTS_PER_DAY", self.digests_per_day.into()),
            ("CHATROOM_TOPIC_BUFFER", size(self.topic_buffer)),
            ("CHATROOM_MAX_BODY_BYTES", size(limits.max_body_bytes)),
            ("CHATROOM_MAX_DEPTH", size(limits.max_depth)),
            ("CHATROOM_MAX_COMPLEXITY", size(limits.max_complexity)),
            (
                "CHATROOM_MAX_RESPONSE_BYTES",
                size(limits.max_response_bytes),
            ),
            ("CHATROOM_MAX_FRAME_BYTES", size(limits.max_frame_bytes)),
            ("CHATROOM_MAX_PAGE_SIZE", limits.max_page_size.into()),
            ("CHATROOM_MAX_MESSAGE_CHARS", size(limits.max_message_chars)),
            (
                "CHATROOM_MAX_ROOMS_PER_USER",
                size(limits.max_rooms_per_user),
            ),
            ("CHATROOM_MAX_GROUP_MEMBERS", size(limits.max_group_members)),
            (
                "CHATROOM_MAX_USERNAMES_PER_REQUEST",
                size(limits.max_usernames_per_request),
            ),
            (
                "CHATROOM_MAX_SOCKETS_PER_ADDRESS",
                size(limits.max_sockets_per_address),
            ),
            (
                "CHATROOM_MAX_CONNECTIONS",
                limits.max_connections.map_or(1, size),
            ),
            (
                "CHATROOM_MAX_OPERATIONS_PER_SOCKET",
                size(limits.max_operations_per_socket),
            ),
            (
                "CHATROOM_MAX_FRAMES_PER_SECOND",
                limits.max_frames_per_second.into(),
            ),
            ("CHATROOM_SLOW_CLIENT_SECS", wide(limits.slow_client_secs)),
            ("CHATROOM_INIT_TIMEOUT_SECS", wide(limits.init_timeout_secs)),
            ("CHATROOM_PING_SECS", wide(limits.ping_secs)),
            ("CHATROOM_IDLE_TIMEOUT_SECS", wide(limits.idle_timeout_secs)),
            (
                "CHATROOM_LOGIN_FAILURES_PER_USERNAME",
                rates.login_failures_per_username.into(),
            ),
            (
                "CHATROOM_LOGIN_FAILURES_PER_ADDRESS",
                rates.login_failures_per_address.into(),
            ),
            ("CHATROOM_CODES_PER_ADDRESS", rates.codes_per_address.into()),
            (
                "CHATROOM_MESSAGES_PER_SECOND",
                rates.messages_per_second.into(),
            ),
            ("CHATROOM_MESSAGE_BURST", rates.message_burst.into()),
            ("CHATROOM_WRITES_PER_SECOND", rates.writes_per_second.into()),
            ("CHATROOM_WRITE_BURST", rates.write_burst.into()),
            (
                "CHATROOM_SEARCHES_PER_SECOND",
                rates.searches_per_second.into(),
            ),
            ("CHATROOM_SEARCH_BURST", rates.search_burst.into()),
            (
                "CHATROOM_ADDRESS_WRITES_PER_SECOND",
                rates.address_writes_per_second.into(),
            ),
            (
                "CHATROOM_ADDRESS_WRITE_BURST",
                rates.address_write_burst.into(),
            ),
            (
                "CHATROOM_REGISTRATIONS_PER_ADDRESS",
                rates.registrations_per_address.into(),
            ),
            (
                "CHATROOM_CONNECTIONS_PER_SECOND",
                rates.connections_per_second.into(),
            ),
            ("CHATROOM_CONNECTION_BURST", rates.connection_burst.into()),
        ]
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.mail_outbox
            .clone()
            .unwrap_or_else(|| self.data_dir.join("outbox"))
    }

    pub fn store_timeout(&self) -> Duration {
        Duration::from_secs(self.store_timeout_secs)
    }

    pub fn presence_timeout(&self) -> Duration {
        Duration::from_secs(self.presence_timeout_secs)
    }

    /// The web client's address, for links in mail.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.clone(),
            None => format!("http://{}/", self.listen),
        }
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn the_defaults_are_valid() {
        Config::default().validate().expect("valid");
        Cli::try_parse_from(["chatroom"])
            .expect("parses")
            .config
            .validate()
            .expect("valid");
    }

    #[test]
    fn a_zero_count_is_refused_by_name_not_a_panic() {
        for (name, _) in Config::default().counts() {
            let flag = format!(
                "--{}",
                name.trim_start_matches("CHATROOM_")
                    .to_lowercase()
                    .replace('_', "-")
            );
            let parsed = Cli::try_parse_from(["chatroom", flag.as_str(), "0"]);
            let config = match parsed {
                Ok(cli) => cli.config,
                // A flag named otherwise than its variable: set it by the variable.
                Err(_) => {
                    let mut config = Config::default();
                    set_zero(&mut config, name);
                    config
                }
            };
            let error = config.validate().expect_err(name).to_string();
            assert!(error.contains(name), "{name}: {error}");
        }
    }

    #[test]
    fn several_redis_urls_are_a_cluster_and_each_must_parse() {
        let with = |urls: &str| Config {
            redis_url: Some(urls.into()),
            ..Config::default()
        };
        with("redis://10.0.0.1:6379")
            .validate()
            .expect("one server");
        with("redis://10.0.0.1:6379, redis://10.0.0.2:6379")
            .validate()
            .expect("a cluster");
        let error = with("redis://10.0.0.1:6379,nonsense://x")
            .validate()
            .expect_err("a bad seed");
        assert!(error.to_string().contains("nonsense://x"), "{error}");
        with(" , ").validate().expect_err("no server");
    }

    #[test]
    fn a_redis_prefix_with_braces_is_refused() {
        let config = Config {
            redis_prefix: "app{1}:".into(),
            ..Config::default()
        };
        let error = config.validate().expect_err("braces");
        assert!(
            error.to_string().contains("CHATROOM_REDIS_PREFIX"),
            "{error}"
        );
    }

    /// The server takes the flags' defaults and the tests `Config::default()`:
    /// they must be one, for docs/api.md to state both (its test compares
    /// the flags').
    #[test]
    fn the_flags_defaults_are_config_default() {
        let flags = Cli::try_parse_from(["chatroom"]).expect("parses").config;
        assert_eq!(
            format!("{:?}", flags.counts()),
            format!("{:?}", Config::default().counts())
        );
        let defaults = Config::default();
        assert_eq!(flags.code_resend_secs, defaults.code_resend_secs);
        assert_eq!(flags.shutdown_timeout_secs, defaults.shutdown_timeout_secs);
        assert_eq!(flags.digest_after_secs, defaults.digest_after_secs);
        assert_eq!(flags.limits.max_batch, defaults.limits.max_batch);
        assert_eq!(
            flags.limits.max_connections,
            defaults.limits.max_connections
        );
    }

    fn set_zero(config: &mut Config, name: &str) {
        match name {
            "CHATROOM_JWT_TTL" => config.jwt_ttl_secs = 0,
            "CHATROOM_CODE_TTL" => config.code_ttl_secs = 0,
            "CHATROOM_STORE_TIMEOUT" => config.store_timeout_secs = 0,
            "CHATROOM_PRESENCE_TIMEOUT" => config.presence_timeout_secs = 0,
            "CHATROOM_SLOW_CLIENT_SECS" => config.limits.slow_client_secs = 0,
            other => panic!("{other} has neither a flag of its name nor a setter here"),
        }
    }
}
