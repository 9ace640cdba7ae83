//! The layers of docs/architecture.md know nothing of the ones above them:
//! the rules, the stores, the broker and the kv compile without the GraphQL
//! engine, the web framework and the transports, and the schema without
//! the transports.

use std::path::{Path, PathBuf};

/// What no folder below the schema may name: the GraphQL engine, the web
/// framework, and the schema and transports as path segments (`live::`
/// catches `crate::live::accept` and `use crate::{live, ..}` alike).
const ABOVE_THE_RULES: &[&str] = &["async_graphql", "axum", "graphql::", "http::", "live::"];

/// Each folder of `src/`, and what it may not name besides: the layers
/// between it and the rules.
const LOWER_LAYERS: &[(&str, &[&str])] = &[
    ("chat", &[]),
    ("broker", &["chat::"]),
    ("store", &["chat::", "broker::"]),
    ("kv", &["chat::", "broker::", "store::"]),
];

/// The schema may not name the framework or the transports.
const SCHEMA: (&str, &[&str]) = ("graphql", &["axum", "http::", "live::"]);

/// Every folder checked, with all it may not name.
fn rules() -> Vec<(&'static str, Vec<&'static str>)> {
    let lower = LOWER_LAYERS.iter().map(|(folder, between)| {
        let forbidden = ABOVE_THE_RULES.iter().chain(between.iter()).copied();
        (*folder, forbidden.collect())
    });
    lower
        .chain(std::iter::once((SCHEMA.0, SCHEMA.1.to_vec())))
        .collect()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}

/// Whether `line` names `name`, and not a longer name it is part of.
fn names(line: &str, name: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(name).any(|(at, _)| {
        let before = line[..at].chars().next_back().is_some_and(word);
        let after = name.ends_with(word) && line[at + name.len()..].starts_with(word);
        !before && !after
    })
}

#[test]
fn the_lower_layers_use_nothing_of_the_layers_above_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut crossings = Vec::new();
    for (folder, forbidden) in rules() {
        let files = rust_files(&src.join(folder));
        assert!(!files.is_empty(), "src/{folder} has no Rust files");
        for file in files {
            let text = std::fs::read_to_string(&file).expect("a readable source file");
            for (number, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                for name in forbidden.iter().filter(|name| names(code, name)) {
                    crossings.push(format!(
                        "{}:{}: {name}",
                        file.strip_prefix(&src).unwrap_or(&file).display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(
        crossings.is_empty(),
        "a layer uses one above it: {crossings:#?}"
    );
}

#[test]
fn a_crossing_is_seen_in_any_path_that_names_it() {
    assert!(names("use async_graphql::Enum;", "async_graphql"));
    assert!(names("#[derive(async_graphql::Enum)]", "async_graphql"));
    assert!(names("    axum::http::StatusCode", "axum"));
    assert!(names("    live::accept(app)", "live::"));
    assert!(names("use crate::{graphql::Schemas, live};", "graphql::"));
    assert!(!names("use crate::livestock::Cow;", "live::"));
    assert!(!names("let my_axum_like = 1;", "axum"));
}
