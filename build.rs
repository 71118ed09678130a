//! The SQL stores embed their migrations (`sqlx::migrate!`): rebuild when they change.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
