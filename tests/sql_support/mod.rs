//! Databases for the SQL store tests: a schema of its own per test in the PostgreSQL at
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), an SQLite file in a
//! directory of its own, and a PostgreSQL server of the tests' own that they stop and
//! start.
//!
//! Tests that need PostgreSQL never pass without one: they fail and say how to fix it.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[cfg(feature = "postgres")]
#[allow(unused_imports)]
pub use postgres::*;

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A name no other test (nor another run) uses.
pub fn unique_name(test: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{test}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A migrated SQLite store on a file of its own, in a directory this test process keeps
/// until the next run (which removes the directories of processes that are gone).
#[cfg(feature = "sqlite")]
pub async fn sqlite_file_store() -> tower_jwt_auth::store::SqliteStore {
    const PREFIX: &str = "tja-sqlite-tests-";
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let tmp = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(PREFIX)
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = tmp.join(format!("{PREFIX}{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.db", NEXT.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_file(&file);
    let store = tower_jwt_auth::store::SqliteStore::open(file)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

/// A directory of its own under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tja-{}", unique_name(test)));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// A free TCP port on 127.0.0.1 (free when asked; another process may take it after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `program` with `args` as the `postgres` system user; panics with its output when
/// it fails.
pub fn as_postgres(program: &Path, args: &[&str]) {
    let output = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", program.display()));
    assert!(
        output.status.success(),
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Where `initdb` and `pg_ctl` are: the newest `/usr/lib/postgresql/*/bin`, or `PATH`.
pub fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop().unwrap_or_default()
}

/// A PostgreSQL server of the tests' own: a cluster in a temporary directory, on a free port,
/// run as the `postgres` system user; stopped and removed on drop.
pub struct PgServer {
    dir: TempDir,
    port: u16,
    bin: PathBuf,
}

impl PgServer {
    pub fn start(test: &str) -> Self {
        let bin = postgres_bin();
        assert!(
            bin.join("initdb").exists(),
            "these tests start a PostgreSQL of their own: install PostgreSQL \
             (apt-get install postgresql) so that /usr/lib/postgresql/*/bin/initdb exists"
        );
        let dir = TempDir::new(test);
        // The cluster's directory belongs to the user that runs the server.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "chown of {} failed", dir.path().display());
        let data = dir.path().join("data");
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let mut server = Self { dir, port: 0, bin };
        for _ in 0..5 {
            server.port = free_port();
            if server.try_start() {
                return server;
            }
        }
        panic!("PostgreSQL did not start on a free port");
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops it (fast shutdown: connections are cut) and waits until it is gone.
    pub fn stop(&self) {
        as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.try_start() {
            assert!(Instant::now() < deadline, "PostgreSQL did not restart");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Freezes (`-STOP`) or thaws (`-CONT`) the server and its backends: connections stay
    /// open but nothing answers.
    pub fn signal(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid")).unwrap();
        let pid = pid.lines().next().unwrap().trim().to_owned();
        let children = Command::new("pgrep").args(["-P", &pid]).output().unwrap();
        let mut pids = vec![pid];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .split_whitespace()
                .map(str::to_owned),
        );
        let status = Command::new("kill")
            .arg(signal)
            .args(&pids)
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pids:?} failed");
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn try_start(&self) -> bool {
        let log = self.dir.path().join("log");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", self.data().to_str().unwrap(), "-l"])
            .arg(&log)
            .args(["-o", &options, "-w", "-t", "20", "start"])
            .output()
            .is_ok_and(|output| output.status.success())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // A frozen server must thaw to hear the stop.
        if let Ok(pid) = std::fs::read_to_string(self.data().join("postmaster.pid"))
            && let Some(pid) = pid.lines().next()
        {
            let _ = Command::new("pkill")
                .args(["-CONT", "-P", pid.trim()])
                .status();
            let _ = Command::new("kill").args(["-CONT", pid.trim()]).status();
        }
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::str::FromStr;

    use sqlx::postgres::PgConnectOptions;
    use sqlx::{Connection, PgConnection};
    use tower_jwt_auth::store::{PostgresStore, PostgresStoreBuilder};

    const HOW_TO_FIX: &str = "these tests need PostgreSQL: set DATABASE_URL (for example \
        DATABASE_URL=postgres://postgres@127.0.0.1:5432/test) or run one there";

    impl super::PgServer {
        /// A store on this server, migrated: four connections, every call bounded by
        /// `timeout`.
        pub async fn store(&self, timeout: std::time::Duration) -> PostgresStore {
            let store = PostgresStore::builder()
                .timeout(timeout)
                .max_connections(4)
                .connect(&self.url())
                .await
                .unwrap();
            store.migrate().await.unwrap();
            store
        }
    }

    /// `DATABASE_URL` when it names PostgreSQL, else the local test database.
    pub fn pg_url() -> String {
        match std::env::var("DATABASE_URL") {
            Ok(url) if url.starts_with("postgres") => url,
            _ => "postgres://postgres@127.0.0.1:5432/test".into(),
        }
    }

    /// The schema the conformance items share (they work under users of their own): one per
    /// version of the schema, so that a changed migration never meets an old one.
    fn shared_schema() -> String {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut hasher = DefaultHasher::new();
        include_str!("../../migrations/postgres/20261129000001_jwt_sessions.sql").hash(&mut hasher);
        format!("tja_conformance_{:016x}", hasher.finish())
    }

    /// A migrated store in the shared schema, created if missing.
    pub async fn shared_pg_store() -> PostgresStore {
        let shared = shared_schema();
        let shared = shared.as_str();
        let url = pg_url();
        let mut connection = PgConnection::connect(&url)
            .await
            .unwrap_or_else(|error| panic!("{error}: {HOW_TO_FIX}"));
        // Items start at once: a concurrent creation of the schema may fail; it exists then.
        let _ = sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {shared}"))
            .execute(&mut connection)
            .await;
        let _ = connection.close().await;
        let options = PgConnectOptions::from_str(&url)
            .unwrap()
            .options([("search_path", shared)]);
        let store = PostgresStore::builder()
            .connect_with(options)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// A schema of one test's own, dropped (with its tables) on drop.
    pub struct PgSchema {
        url: String,
        name: String,
    }

    impl PgSchema {
        pub async fn new(test: &str) -> Self {
            let url = pg_url();
            let name = format!("tja_{}", super::unique_name(test)).to_lowercase();
            let mut connection = PgConnection::connect(&url)
                .await
                .unwrap_or_else(|error| panic!("{error}: {HOW_TO_FIX}"));
            sqlx::query(&format!("CREATE SCHEMA \"{name}\""))
                .execute(&mut connection)
                .await
                .unwrap();
            let _ = connection.close().await;
            Self { url, name }
        }

        /// Connection options whose `search_path` is this schema.
        pub fn options(&self) -> PgConnectOptions {
            PgConnectOptions::from_str(&self.url)
                .unwrap()
                .options([("search_path", self.name.as_str())])
        }

        /// A migrated store in this schema.
        pub async fn store(&self) -> PostgresStore {
            self.store_with(PostgresStore::builder()).await
        }

        /// A migrated store in this schema, from `builder`.
        pub async fn store_with(&self, builder: PostgresStoreBuilder) -> PostgresStore {
            let store = builder.connect_with(self.options()).await.unwrap();
            store.migrate().await.unwrap();
            store
        }

        pub fn name(&self) -> &str {
            &self.name
        }
    }

    impl Drop for PgSchema {
        fn drop(&mut self) {
            let url = self.url.clone();
            let name = self.name.clone();
            // Drop may run inside a runtime: a thread with a runtime of its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    if let Ok(mut connection) = PgConnection::connect(&url).await {
                        let _ = sqlx::query(&format!("DROP SCHEMA \"{name}\" CASCADE"))
                            .execute(&mut connection)
                            .await;
                        let _ = connection.close().await;
                    }
                });
            })
            .join();
        }
    }
}
