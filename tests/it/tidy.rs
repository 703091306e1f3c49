//! Module-boundary checks for `src/epp` (style.md §2): no simulator imports,
//! no IO, clock, environment or threads, and a `//!` doc on every file.

use std::path::{Path, PathBuf};

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn epp_is_pure() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/epp");
    let mut files = Vec::new();
    rs_files(&root, &mut files);
    files.sort();
    assert!(files.len() > 20);
    let forbidden = [
        "std::fs",
        "std::net",
        "std::time",
        "std::env",
        "std::thread",
        "tokio",
        "Instant::now",
        "SystemTime",
    ];
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} lacks a //! module doc",
            f.display()
        );
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for bad in forbidden {
                assert!(
                    !line.contains(bad),
                    "{}:{}: forbidden {bad}",
                    f.display(),
                    i + 1
                );
            }
            if let Some(pos) = line.find("crate::") {
                let rest = &line[pos + "crate::".len()..];
                assert!(
                    rest.starts_with("epp"),
                    "{}:{}: epp imports crate::{rest}",
                    f.display(),
                    i + 1
                );
            }
        }
    }
}
