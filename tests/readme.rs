//! The README's complete app is `examples/app.rs` exactly, and it builds as a crate of its
//! own from nothing but the README: its code as `src/main.rs` and its `[dependencies]`
//! lines (this crate by path instead of from crates.io), as a reader would paste them.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The body of the fenced block that opens with `fence` after the heading `heading`.
fn block(readme: &str, heading: &str, fence: &str) -> String {
    let section = readme
        .split_once(heading)
        .unwrap_or_else(|| panic!("README has no heading {heading:?}"))
        .1;
    let start = section
        .find(fence)
        .unwrap_or_else(|| panic!("no {fence:?} block under {heading:?}"))
        + fence.len();
    let body = &section[start..];
    let end = body.find("\n```").expect("an unclosed block");
    body[..end].trim_start_matches('\n').to_owned() + "\n"
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap()
}

#[test]
fn the_readme_app_is_the_example_verbatim() {
    let code = block(&readme(), "## A complete app", "```rust,no_run");
    let example = std::fs::read_to_string(Path::new(ROOT).join("examples/app.rs")).unwrap();
    assert!(
        code == example,
        "README's complete app and examples/app.rs differ: copy the example into the README"
    );
}

#[test]
fn the_readme_app_builds_as_pasted_into_a_new_crate() {
    let readme = readme();
    let code = block(&readme, "## A complete app", "```rust,no_run");
    let dependencies = block(&readme, "## A complete app", "```toml");
    assert!(
        dependencies.starts_with("[dependencies]\n"),
        "{dependencies}"
    );
    // The one line a reader keeps and this test changes: the crate itself, by path.
    let ours = dependencies
        .lines()
        .find(|line| line.starts_with("tower-jwt-auth"))
        .expect("the README's dependencies name tower-jwt-auth");
    let dependencies =
        dependencies.replace(ours, &format!("tower-jwt-auth = {{ path = {ROOT:?} }}"));

    let dir = PathBuf::from(ROOT).join("target/readme-app");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"readme-app\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
         [workspace]\n\n{dependencies}"
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/main.rs"), code).unwrap();
    // The versions this crate is tested with, and no network.
    std::fs::copy(Path::new(ROOT).join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["check", "--offline", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the README's app does not build as pasted:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
