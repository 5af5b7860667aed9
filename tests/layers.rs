//! The crate's shape, checked: modules import only from the layers below them (so there is
//! no import circle, and `error` sits at the bottom), and no source file is too long to read
//! in one sitting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Every top-level module, bottom first. A module may use items of the modules before it.
const LAYERS: &[&[&str]] = &[
    &["_documentation", "clock", "limits"],
    &["hash"],
    &["error"],
    &["validate", "header"],
    &["token"],
    &["record"],
    &["store", "ratelimit"],
    &["service"],
    &["web"],
    &["axum", "actix", "tower", "testkit"],
];

/// Longest source file, in lines.
const MAX_LINES: usize = 600;

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a file belongs to (`src/store/sql.rs` → `store`).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).expect("under src");
    let first = rel.components().next().expect("a component");
    let first = first.as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// Which module each name re-exported at the root (`pub use module::{A, B}`) comes from,
/// plus the exported macros.
fn root_names() -> HashMap<String, String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let mut names = HashMap::new();
    let mut statement = String::new();
    for line in lib.lines().map(str::trim) {
        if line.starts_with("pub use ") || !statement.is_empty() {
            statement.push_str(line);
            statement.push(' ');
            if !line.ends_with(';') {
                continue;
            }
            let path = statement
                .trim_start_matches("pub use ")
                .trim_end_matches([';', ' ']);
            let module = path.split("::").next().expect("a module").to_owned();
            let items = path.rsplit("::").next().expect("items");
            let items = items.trim_matches(|c| c == '{' || c == '}' || c == ' ');
            for item in items.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                names.insert(item.to_owned(), module.clone());
            }
            statement.clear();
        }
    }
    names.insert("conformance_tests".into(), "testkit".into());
    names.insert("scope_requirement".into(), "web".into());
    names
}

/// The module path of a file within its crate (`src/store/sql/mod.rs` → `store::sql`).
fn module_path(path: &Path) -> Vec<String> {
    let rel = path.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned()
        })
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The first names of the paths in `rest`, the text after `crate::`: one name, or each
/// item's first name in a `{…}` group (`{a::X, b::{Y, Z}}` → `a`, `b`).
fn first_names(rest: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![ident(rest)];
    };
    let mut names = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                names.push(ident(&group[start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                names.push(ident(&group[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    names.retain(|n| !n.is_empty() && n != "self");
    names
}

/// Keep the names that are crate items (a glob or `self` names none).
fn named(names: Vec<String>) -> impl Iterator<Item = String> {
    names.into_iter().filter(|n| !n.is_empty() && n != "self")
}

/// Every crate-level name a file uses outside comments, with its line number: `crate::x`,
/// `$crate::x`, each name of `crate::{x, y}`, and `super::…` paths that climb out of the
/// file's top-level module.
fn crate_paths(text: &str, file: &Path) -> Vec<(usize, String)> {
    let module = module_path(file);
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break; // unit tests are not part of the layering
        }
        if line.trim_start().starts_with("//") {
            continue;
        }
        let bytes = line.as_bytes();
        let mut at = 0;
        while let Some(found) = line[at..].find("crate::").map(|i| i + at) {
            let is_path = found == 0
                || !(bytes[found - 1].is_ascii_alphanumeric() || bytes[found - 1] == b'_');
            at = found + "crate::".len();
            if is_path {
                out.extend(named(first_names(&line[at..])).map(|name| (n + 1, name)));
            }
        }
        let mut at = 0;
        while let Some(found) = line[at..].find("super::").map(|i| i + at) {
            let mut rest = &line[found..];
            let mut ups = 0;
            while let Some(r) = rest.strip_prefix("super::") {
                ups += 1;
                rest = r;
            }
            at = line.len() - rest.len();
            // From `a::b::c`, one `super` is `a::b`; climbing to the root leaves the
            // file's top-level module, and the next name is a crate-level one.
            if ups >= module.len() {
                out.extend(named(first_names(rest)).map(|name| (n + 1, name)));
            }
        }
    }
    out
}

#[test]
fn modules_import_only_from_the_layers_below() {
    let names = root_names();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(file);
        if module == "lib" {
            continue;
        }
        let own = rank(&module).unwrap_or_else(|| panic!("{module} is in no layer"));
        let text = std::fs::read_to_string(file).expect("a source file");
        for (line, name) in crate_paths(&text, file) {
            let target = if rank(&name).is_some() {
                name.clone()
            } else {
                names.get(&name).cloned().unwrap_or_else(|| {
                    panic!("{}:{line}: where does crate::{name} live?", file.display())
                })
            };
            if ["sqlx", "std", "core"].contains(&target.as_str()) || target == module {
                continue;
            }
            let theirs = rank(&target).unwrap_or_else(|| panic!("{target} is in no layer"));
            if theirs >= own {
                violations.push(format!(
                    "{}:{line}: `{module}` uses `crate::{name}` from `{target}`, which is not below it",
                    file.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_error_module_imports_nothing_above_the_clock() {
    let mut files = Vec::new();
    rust_files(&src().join("error"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a source file");
        for (line, name) in crate_paths(&text, &file) {
            assert!(
                ["clock", "limits"].contains(&name.as_str()),
                "{}:{line}: error uses crate::{name}",
                file.display()
            );
        }
    }
}

#[test]
fn no_source_file_is_too_long_to_read_in_one_sitting() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for file in files {
        let lines = std::fs::read_to_string(&file)
            .expect("a source file")
            .lines()
            .count();
        assert!(lines <= MAX_LINES, "{} has {lines} lines", file.display());
    }
}
