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
    &["store"],
    &["service"],
    &["axum", "testkit"],
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
    names.insert("scope_requirement".into(), "axum".into());
    names
}

/// Every `crate::name` and `$crate::name` outside comments, with its line number.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let is_path = at == 0 || {
                let before = rest.as_bytes()[at - 1];
                !(before.is_ascii_alphanumeric() || before == b'_')
            };
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if is_path && !name.is_empty() {
                out.push((n + 1, name));
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
        for (line, name) in crate_paths(&text) {
            let target = if rank(&name).is_some() {
                name.clone()
            } else {
                names.get(&name).cloned().unwrap_or_else(|| {
                    panic!("{}:{line}: where does crate::{name} live?", file.display())
                })
            };
            if target == "sqlx" || target == module {
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
        for (line, name) in crate_paths(&text) {
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
