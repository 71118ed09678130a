//! The SQLite store across restarts, and what its files hold.

mod sql_support;

use tower_jwt_auth::store::SqliteStore;
use tower_jwt_auth::{AuthError, Keys, Login, Sessions, TokenError};

use sql_support::{TempDir, contains};

const KEY: [u8; 32] = [7; 32];

async fn sessions_on(path: &std::path::Path) -> Sessions<SqliteStore> {
    let store = SqliteStore::open(path).await.unwrap();
    store.migrate().await.unwrap();
    Sessions::builder(Keys::hs256(KEY).unwrap(), store)
        .build()
        .unwrap()
}

#[tokio::test]
async fn sessions_survive_a_restart_and_ended_ones_stay_ended() {
    let dir = TempDir::new("restart");
    let path = dir.path().join("sessions.db");
    let sessions = sessions_on(&path).await;
    let kept = sessions.issue(Login::new("alice")).await.unwrap();
    let ended = sessions.issue(Login::new("alice")).await.unwrap();
    assert!(sessions.revoke("alice", &ended.session_id).await.unwrap());
    sessions.store().close().await;
    drop(sessions);

    // A new process on the same file: the migration is a no-op, the sessions are there.
    let sessions = sessions_on(&path).await;
    let claims = sessions
        .authenticate_token(&kept.access_token)
        .await
        .unwrap();
    assert_eq!(claims.sid, kept.session_id);
    assert!(matches!(
        sessions.authenticate_token(&ended.access_token).await,
        Err(AuthError::InvalidToken(TokenError::Revoked))
    ));
    // The refresh token of the kept session still rotates; the ended one's does not.
    assert!(sessions.refresh(&kept.refresh_token).await.is_ok());
    assert!(sessions.refresh(&ended.refresh_token).await.is_err());
}

#[tokio::test]
async fn the_files_never_hold_a_token() {
    let dir = TempDir::new("no-token");
    let sessions = sessions_on(&dir.path().join("sessions.db")).await;
    let mut tokens = Vec::new();
    for user in ["alice", "bob"] {
        let issued = sessions
            .issue(Login::new(user).user_agent("test-agent/1"))
            .await
            .unwrap();
        let refreshed = sessions.refresh(&issued.refresh_token).await.unwrap();
        tokens.extend([
            issued.access_token,
            issued.refresh_token,
            refreshed.access_token,
            refreshed.refresh_token,
        ]);
    }
    drop(sessions);
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    // The sessions are in there...
    assert!(contains(&bytes, b"test-agent/1"));
    assert!(contains(&bytes, b"alice"));
    for token in &tokens {
        assert!(
            !contains(&bytes, token.as_bytes()),
            "a whole token is stored"
        );
        // ...but no claims part or signature of any token (the header is the same for all).
        for part in token.split('.').skip(1) {
            assert!(!contains(&bytes, part.as_bytes()), "a token part is stored");
        }
    }
}

/// Two stores on one file stand for two processes: their writes wait for each other (busy
/// timeout, `BEGIN IMMEDIATE`) and the limit holds across them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_count_the_limit_together() {
    use tower_jwt_auth::SessionId;
    use tower_jwt_auth::clock::from_unix_seconds;
    use tower_jwt_auth::store::{Created, Session, SessionLimit, SessionStore, WhenFull};

    let dir = TempDir::new("two-stores");
    let path = dir.path().join("sessions.db");
    let one = SqliteStore::open(&path).await.unwrap();
    one.migrate().await.unwrap();
    let two = SqliteStore::open(&path).await.unwrap();
    let now = sql_support::unix_now();
    let limit = Some(SessionLimit {
        max: 4,
        when_full: WhenFull::RefuseNew,
    });
    let tasks: Vec<_> = (0..20u128)
        .map(|n| {
            let store = if n % 2 == 0 { one.clone() } else { two.clone() };
            tokio::spawn(async move {
                let session = Session::new(
                    SessionId::from_bytes(n.to_be_bytes()),
                    "alice",
                    from_unix_seconds(now),
                    from_unix_seconds(now + 100),
                );
                store.create(&session, limit).await.unwrap()
            })
        })
        .collect();
    let mut live = 0;
    for task in tasks {
        if let Created::Live { .. } = task.await.unwrap() {
            live += 1;
        }
    }
    assert_eq!(live, 4);
    assert_eq!(two.list("alice", now, 100).await.unwrap().len(), 4);
}
