//! A release build carries the web client's build (`playground/dist`, see
//! `src/http/web.rs`), so it must be built again when that changes, or
//! appears: the embedding macro tracks the files it found, not the folder.
//! A debug build reads the files at run time and needs neither.

use std::{env, path::Path};

fn main() {
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
