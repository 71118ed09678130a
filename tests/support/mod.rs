//! A Redis for the tests: the one at `REDIS_URL`, or a `redis-server` of their own.
//!
//! Tests that need Redis never pass without one: when `REDIS_URL` is unset and no
//! `redis-server` can be started, they fail and say how to fix it.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const HOW_TO_FIX: &str = "these tests need Redis: set REDIS_URL (for example \
                          REDIS_URL=redis://127.0.0.1:6379/) or install redis-server on PATH";

/// A rotation presenting generation `generation` with digest `[digest; 32]` at `now`, its
/// successor's digest `[next; 32]`, the session kept until `expires_at`, and no grace.
pub fn rotation(
    generation: u64,
    digest: u8,
    next: u8,
    now: u64,
    expires_at: u64,
) -> tower_jwt_auth::store::Rotation {
    tower_jwt_auth::store::Rotation {
        generation,
        digest: [digest; 32],
        next_digest: [next; 32],
        now,
        expires_at,
        grace: 0,
    }
}

/// The Redis a test runs against, alive as long as this value.
pub struct TestRedis {
    url: String,
    _server: Option<Arc<RedisServer>>,
}

impl TestRedis {
    /// `REDIS_URL` when set, otherwise a `redis-server` shared by the tests of this binary
    /// that run at the same time (they use distinct key prefixes), killed after the last.
    pub fn get() -> Self {
        static SHARED: Mutex<Weak<RedisServer>> = Mutex::new(Weak::new());
        if let Ok(url) = std::env::var("REDIS_URL")
            && !url.is_empty()
        {
            return Self { url, _server: None };
        }
        let mut shared = SHARED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let server = shared.upgrade().unwrap_or_else(|| {
            let server = Arc::new(RedisServer::start());
            *shared = Arc::downgrade(&server);
            server
        });
        Self {
            url: server.url(),
            _server: Some(server),
        }
    }

    /// Where it listens.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A key prefix no other test (nor another run) uses, so tests can share one Redis.
pub fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "tja-test:{test}:{}:{nanos}:{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A `redis-server` this process started, on a port of its own, in a directory of its own;
/// killed on drop. It can be stopped, restarted on the same port, paused and resumed.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    paused: bool,
}

impl RedisServer {
    /// A server that persists nothing.
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// A server with extra `redis-server` arguments (persistence settings, for instance).
    pub fn start_with(args: &[&str]) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tower-jwt-auth-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            port: 0,
            dir,
            args: args.iter().map(|arg| arg.to_string()).collect(),
            child: None,
            paused: false,
        };
        // Another process may take the free port before the server binds it: try again.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on a free port; {HOW_TO_FIX}");
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// Kills it (as a crash would) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.paused {
                self.signal(&child, "-CONT");
                self.paused = false;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with the same directory (and so the same data when
    /// it persists any).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        // The port may linger for a moment after the kill.
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Freezes it (SIGSTOP): it holds its connections but answers nothing.
    pub fn pause(&mut self) {
        let child = self.child.as_ref().expect("the server runs");
        self.signal(child, "-STOP");
        self.paused = true;
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&mut self) {
        let child = self.child.as_ref().expect("the server runs");
        self.signal(child, "-CONT");
        self.paused = false;
    }

    fn signal(&self, child: &Child, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {} failed", child.id());
    }

    /// Starts the process and waits until it answers PING; `false` when it exited (the port
    /// was taken).
    fn spawn(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => panic!("cannot start redis-server ({error}); {HOW_TO_FIX}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            // Only our own server counts, not another process that took the port.
            if ping(self.port) && matches!(child.try_wait(), Ok(None)) {
                self.child = Some(child);
                return true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "redis-server on port {} did not answer PING in 10 s",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether a Redis on `port` answers PING (not while it is still loading its data).
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
