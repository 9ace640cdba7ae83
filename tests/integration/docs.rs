//! What a client author reads holds to the code and to the repository:
//! the limits of docs/api.md are the defaults the server starts with, and
//! README.md and docs/ point only at files a clone of the repository has.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use chatroom::Config;
use clap::{Args, Command};

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Each setting's default as the server takes it when unset, by its
/// variable: the flags' defaults, which a unit test of `config` holds to
/// `Config::default()`.
fn defaults() -> HashMap<String, Option<String>> {
    Config::augment_args(Command::new("chatroom"))
        .get_arguments()
        .filter_map(|argument| {
            let variable = argument.get_env()?.to_str()?.to_owned();
            let default = argument
                .get_default_values()
                .first()
                .map(|value| value.to_string_lossy().into_owned());
            Some((variable, default))
        })
        .collect()
}

/// A row of one of the tables of a page's "Limits" section.
#[derive(Debug)]
struct Limit {
    what: String,
    default: String,
    setting: String,
}

fn limits(page: &str) -> Vec<Limit> {
    let section = page
        .split("\n## ")
        .find(|section| section.starts_with("Limits\n"))
        .expect("a Limits section");
    let mut rows = Vec::new();
    let mut header: Option<Vec<String>> = None;
    for line in section.lines() {
        let Some(inner) = line
            .trim()
            .strip_prefix('|')
            .and_then(|line| line.strip_suffix('|'))
        else {
            header = None;
            continue;
        };
        let cells: Vec<String> = inner.split('|').map(|c| c.trim().to_owned()).collect();
        let Some(names) = &header else {
            header = Some(cells);
            continue;
        };
        if cells.iter().all(|cell| cell.chars().all(|c| c == '-')) {
            continue;
        }
        let cell = |name: &str| {
            let column = names
                .iter()
                .position(|header| header == name)
                .unwrap_or_else(|| panic!("a limits table without a {name} column: {names:?}"));
            cells[column].clone()
        };
        rows.push(Limit {
            what: cell("limit"),
            default: cell("default"),
            setting: cell("setting"),
        });
    }
    rows
}

/// A default as the tables write it (`64 KiB`, `24 h`, `30 min`, `20/s`,
/// `12`) in the setting's own unit: bytes, seconds, a count.
fn amount(cell: &str) -> Option<u64> {
    let (number, unit) = match cell.split_once(' ') {
        Some(split) => split,
        None => cell
            .strip_suffix("/s")
            .map_or((cell, ""), |number| (number, "/s")),
    };
    let scale = match unit {
        "" | "/s" | "s" => 1,
        "min" => 60,
        "h" => 60 * 60,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        _ => return None,
    };
    number.parse::<u64>().ok().map(|number| number * scale)
}

#[test]
fn every_limit_of_docs_api_md_is_the_codes_default_and_every_setting_is_there() {
    let page = read(&repository().join("docs/api.md"));
    let defaults = defaults();
    let rows = limits(&page);
    assert!(rows.len() > 40, "the tables were not read: {rows:#?}");

    let mut documented = Vec::new();
    for row in rows.iter().filter(|row| row.setting != "fixed") {
        let variable = row.setting.trim_matches('`');
        let Some(code) = defaults.get(variable) else {
            panic!("{:?} names {variable}, which is no setting", row.what);
        };
        match code {
            Some(code) => assert_eq!(
                amount(&row.default),
                code.parse().ok(),
                "{variable}: docs/api.md says {:?}, the code {code}",
                row.default
            ),
            None => assert!(
                row.default.starts_with("unset"),
                "{variable} has no default in the code; docs/api.md says {:?}",
                row.default
            ),
        }
        documented.push(variable);
    }

    let mut missing: Vec<&String> = defaults
        .iter()
        .filter(|(_, default)| default.as_ref().is_some_and(|d| d.parse::<u64>().is_ok()))
        .map(|(variable, _)| variable)
        .filter(|variable| !documented.contains(&variable.as_str()))
        .collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "settings with a numeric default that docs/api.md's limits leave out: {missing:?}"
    );
}

#[test]
fn the_limits_reader_takes_the_units_the_tables_use() {
    assert_eq!(amount("64 KiB"), Some(65_536));
    assert_eq!(amount("4 MiB"), Some(4_194_304));
    assert_eq!(amount("24 h"), Some(86_400));
    assert_eq!(amount("30 min"), Some(1_800));
    assert_eq!(amount("300 s"), Some(300));
    assert_eq!(amount("20/s"), Some(20));
    assert_eq!(amount("12"), Some(12));
    assert_eq!(amount("12 parsecs"), None);
    assert_eq!(amount("unset: computed"), None);
}

/// README.md and every page of docs/.
fn pages() -> Vec<PathBuf> {
    let docs = repository().join("docs");
    let mut pages: Vec<PathBuf> = fs::read_dir(&docs)
        .expect("docs/")
        .map(|entry| entry.expect("an entry of docs/").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.push(repository().join("README.md"));
    pages
}

/// What a page points at by a relative path: the targets of its links,
/// and the code spans that begin with `../`. Fenced blocks are commands,
/// left out.
fn relative_references(page: &str) -> Vec<String> {
    let mut fenced = false;
    let prose: Vec<&str> = page
        .lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect();
    let prose = prose.join("\n");

    let links = prose.split("](").skip(1).filter_map(|after| {
        let target = after.split(')').next()?.split('#').next()?.trim();
        let external = target.is_empty() || target.contains("://") || target.starts_with("mailto:");
        (!external).then(|| target.to_owned())
    });
    let code_spans = prose
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| span.starts_with("../"))
        .map(str::to_owned);
    links.chain(code_spans).collect()
}

#[test]
fn readme_and_docs_point_only_at_files_of_the_repository() {
    let root = repository().canonicalize().expect("the repository");
    let mut broken = Vec::new();
    for page in pages() {
        let folder = page.parent().expect("a page's folder");
        for reference in relative_references(&read(&page)) {
            let inside = folder
                .join(&reference)
                .canonicalize()
                .is_ok_and(|path| path.starts_with(&root));
            if !inside {
                broken.push(format!("{}: {reference}", page.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "paths that are not files of the repository: {broken:#?}"
    );
}

#[test]
fn the_reference_reader_finds_links_and_parent_paths_but_not_urls_or_commands() {
    let page = "See [the API](docs/api.md#errors), [a site](https://example.com), \
        [a heading](#limits) and `../shared/x.md`, not `src/lib.rs`.\n\
        ```sh\ncd ../elsewhere\n```\n";
    assert_eq!(
        relative_references(page),
        vec!["docs/api.md".to_owned(), "../shared/x.md".to_owned()]
    );
}
