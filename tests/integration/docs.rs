//! What a client author reads holds to the code: the limits of
//! docs/api.md are the defaults the server starts with.

use std::{collections::HashMap, fs, path::Path};

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
