//! Two things the build depends on beyond the sources.
//!
//! A release build carries the web client's build (`playground/dist`, see
//! `src/http/web.rs`), so it must be built again when that changes, or
//! appears: the embedding macro tracks the files it found, not the folder.
//! A debug build reads the files at run time and needs neither.
//!
//! The tests that need what `scripts/test` provides (Redis, a MongoDB,
//! redis-server and SecantusDB to start and stop, the web client's build)
//! are compiled as ignored unless `CHATROOM_TEST_SERVICES=1` (which
//! `scripts/test` sets) or `CI=true`: then `cargo test` alone says in its
//! summary how many it left out, and under `scripts/test` or CI a missing
//! service fails its test. The flag is read here rather than the services'
//! addresses, which change with every run and would rebuild the tests each
//! time.

use std::{env, path::Path};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(test_services)");
    println!("cargo::rerun-if-env-changed=CHATROOM_TEST_SERVICES");
    println!("cargo::rerun-if-env-changed=CI");
    let services = env::var("CHATROOM_TEST_SERVICES").is_ok_and(|flag| flag == "1")
        || env::var("CI").is_ok_and(|ci| ci == "true");
    if services {
        println!("cargo::rustc-cfg=test_services");
    }

    if env::var("PROFILE").as_deref() != Ok("release") {
        println!("cargo::rerun-if-changed=build.rs");
    } else if Path::new("playground/dist").is_dir() {
        println!("cargo::rerun-if-changed=playground/dist");
    } else {
        // Not built yet: any change in playground/, its build included,
        // is worth another look.
        println!("cargo::rerun-if-changed=playground");
    }
}
