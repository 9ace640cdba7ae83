//! Concurrent logins against one username: the race of issue 15.
//!
//! The input's first byte is how many tries run at once (1 to 64), the
//! rest the password they all try. Every input tries a username of its own
//! that no account has, so each starts with an empty window. The property:
//! each try is counted before its password is checked, so however they
//! interleave, at most the limit of failures per username
//! (`CHATROOM_LOGIN_FAILURES_PER_USERNAME`, 5) are checked and answered
//! `UNAUTHENTICATED`, and every other try is `RATE_LIMITED`. Before the
//! fix, 40 concurrent tries were all checked.

#![no_main]

use std::{
    net::IpAddr,
    sync::{
        Arc, LazyLock,
        atomic::{AtomicU64, Ordering},
    },
};

use chatroom::{
    Config,
    app::App,
    chat::accounts,
    config::RateLimits,
    error::{Error, Lang},
};
use libfuzzer_sys::fuzz_target;
use tempfile::TempDir;
use tokio::runtime::Runtime;

struct World {
    runtime: Runtime,
    app: Arc<App>,
    /// Numbers the usernames, one per input.
    inputs: AtomicU64,
    _data_dir: TempDir,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    // Worker threads, so the tries really run at once.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let data_dir = tempfile::tempdir().expect("a temporary data dir");
    let config = Config {
        data_dir: data_dir.path().to_owned(),
        jwt_secret: Some("fuzz-secret-fuzz-secret-fuzz-secret!".into()),
        // The address's window would fill across inputs: only the
        // username's is under test.
        rates: RateLimits {
            login_failures_per_address: u32::MAX,
            ..RateLimits::default()
        },
        ..Config::default()
    };
    let app = runtime.block_on(async { Arc::new(App::open(config).await.expect("the app opens")) });
    World {
        runtime,
        app,
        inputs: AtomicU64::new(0),
        _data_dir: data_dir,
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&count, password)) = data.split_first() else {
        return;
    };
    let tries = usize::from(count % 64) + 1;
    let password = String::from_utf8_lossy(password).into_owned();
    let world = &*WORLD;
    let username = format!("race{}", world.inputs.fetch_add(1, Ordering::Relaxed));
    let client = IpAddr::from([127, 0, 0, 1]);
    let answers = world.runtime.block_on(async {
        // Spawned together, so they run at once; then awaited in turn.
        let logins: Vec<_> = (0..tries)
            .map(|_| {
                let (app, username, password) =
                    (world.app.clone(), username.clone(), password.clone());
                tokio::spawn(async move {
                    accounts::login(&app, &username, &password, client, Lang::En).await
                })
            })
            .collect();
        let mut answers = Vec::with_capacity(tries);
        for login in logins {
            answers.push(login.await);
        }
        answers
    });
    let limit = world.app.config.rates.login_failures_per_username as usize;
    let mut checked = 0;
    for answer in answers {
        match answer.expect("a login task ends") {
            Err(Error::BadCredentials) => checked += 1,
            Err(Error::RateLimited { .. }) => {}
            other => panic!("a login of an unknown user answered {other:?}"),
        }
    }
    assert_eq!(checked, tries.min(limit), "{tries} concurrent tries");
});
