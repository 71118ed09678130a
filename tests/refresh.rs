//! Refresh-token rotation, reuse detection, lifetimes and session management, through the
//! `Sessions` handle, on the memory store and on Redis.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_jwt_auth::clock::from_unix_seconds;
use tower_jwt_auth::store::{MemoryStore, SessionStore, WhenFull};
use tower_jwt_auth::{
    AuthError, IssueError, Issued, Keys, Login, ManualClock, Sessions, SessionsBuilder, TokenError,
};

const HOUR: u64 = 3600;

fn sessions<St: SessionStore>(
    store: St,
    clock: &ManualClock,
    configure: impl FnOnce(SessionsBuilder<St>) -> SessionsBuilder<St>,
) -> Sessions<St> {
    let builder = Sessions::builder(Keys::hs256([9; 32]).unwrap(), store)
        .clock(clock.clone())
        .access_ttl(Duration::from_secs(15 * 60))
        .refresh_idle_timeout(Duration::from_secs(HOUR))
        .session_lifetime(Duration::from_secs(3 * HOUR))
        .leeway(Duration::ZERO);
    configure(builder).build().unwrap()
}

/// A clock at the real time: Redis expires its keys on its own clock.
fn clock() -> ManualClock {
    ManualClock::new(support::unix_now())
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value = HeaderValue::try_from(format!("Bearer {token}")).unwrap();
    headers.insert(header::AUTHORIZATION, value);
    headers
}

async fn accepted<St: SessionStore>(sessions: &Sessions<St>, access_token: &str) -> bool {
    match sessions.authenticate(&bearer(access_token)).await {
        Ok(_) => true,
        Err(AuthError::InvalidToken(_)) => false,
        Err(other) => panic!("unexpected {other:?}"),
    }
}

fn refused(result: Result<Issued, IssueError>) -> TokenError {
    match result {
        Err(IssueError::Refused(error)) => error,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn rotation_gives_a_working_pair_and_retires_the_old_token<St: SessionStore>(store: St) {
    let clock = clock();
    let sessions = sessions(store, &clock, |b| b);
    let login = sessions.issue(Login::new("alice")).await.unwrap();
    assert_eq!(login.expires_in, 15 * 60);
    assert_eq!(login.refresh_expires_in, HOUR);

    clock.advance(Duration::from_secs(10 * 60));
    let refreshed = sessions.refresh(&login.refresh_token).await.unwrap();
    assert_eq!(refreshed.session_id, login.session_id);
    assert_ne!(refreshed.refresh_token, login.refresh_token);
    assert_ne!(refreshed.access_token, login.access_token);
    assert!(accepted(&sessions, &refreshed.access_token).await);

    let again = sessions.refresh(&refreshed.refresh_token).await.unwrap();
    assert!(accepted(&sessions, &again.access_token).await);
    let listed = sessions.list("alice").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].refresh.generation, 2);
}

async fn a_reused_refresh_token_ends_the_whole_session<St: SessionStore>(store: St) {
    let clock = clock();
    let sessions = sessions(store, &clock, |b| b);
    let other_device = sessions.issue(Login::new("alice")).await.unwrap();
    let stolen = sessions.issue(Login::new("alice")).await.unwrap();
    // The thief refreshes first...
    let thief = sessions.refresh(&stolen.refresh_token).await.unwrap();
    // ...then the victim presents the same, now retired, token.
    assert!(matches!(
        refused(sessions.refresh(&stolen.refresh_token).await),
        TokenError::RefreshReused
    ));
    assert!(
        !accepted(&sessions, &thief.access_token).await,
        "newest access token dies too"
    );
    assert!(matches!(
        refused(sessions.refresh(&thief.refresh_token).await),
        TokenError::Revoked
    ));
    assert!(
        accepted(&sessions, &other_device.access_token).await,
        "other sessions live on"
    );
}

async fn within_grace_the_racing_tab_is_refused_but_the_session_goes_on<St: SessionStore>(
    store: St,
) {
    let clock = clock();
    let sessions = sessions(store, &clock, |b| b.refresh_grace(Duration::from_secs(10)));
    let login = sessions.issue(Login::new("alice")).await.unwrap();
    let first_tab = sessions.refresh(&login.refresh_token).await.unwrap();
    clock.advance(Duration::from_secs(5));
    assert!(matches!(
        refused(sessions.refresh(&login.refresh_token).await),
        TokenError::RefreshRetired
    ));
    assert!(accepted(&sessions, &first_tab.access_token).await);

    // Past the grace period the same token is theft again.
    clock.advance(Duration::from_secs(6));
    assert!(matches!(
        refused(sessions.refresh(&login.refresh_token).await),
        TokenError::RefreshReused
    ));
    assert!(!accepted(&sessions, &first_tab.access_token).await);
}

async fn concurrent_refreshes_leave_at_most_one_live_branch<St: SessionStore>(
    store: St,
    grace: Duration,
) {
    let clock = clock();
    let sessions = Arc::new(sessions(store, &clock, |b| b.refresh_grace(grace)));
    let login = sessions.issue(Login::new("alice")).await.unwrap();
    let token = Arc::new(login.refresh_token);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (sessions, token) = (sessions.clone(), token.clone());
            tokio::spawn(async move { sessions.refresh(&token).await })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(issued) => winners.push(issued),
            Err(IssueError::Refused(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one refresh gets the new pair");
    let live = accepted(&sessions, &winners[0].access_token).await;
    if grace.is_zero() {
        assert!(!live, "strict: the losers' reuse ended the session");
    } else {
        assert!(live, "forgiven: the one branch lives on");
        assert!(sessions.refresh(&winners[0].refresh_token).await.is_ok());
    }
}

async fn strict_race<St: SessionStore>(store: St) {
    concurrent_refreshes_leave_at_most_one_live_branch(store, Duration::ZERO).await;
}

async fn forgiving_race<St: SessionStore>(store: St) {
    concurrent_refreshes_leave_at_most_one_live_branch(store, Duration::from_secs(30)).await;
}

async fn an_idle_session_expires<St: SessionStore>(store: St) {
    let clock = clock();
    let sessions = sessions(store, &clock, |b| b);
    let login = sessions.issue(Login::new("alice")).await.unwrap();
    clock.advance(Duration::from_secs(HOUR - 60));
    let kept = sessions.refresh(&login.refresh_token).await.unwrap();
    clock.advance(Duration::from_secs(HOUR));
    assert!(matches!(
        refused(sessions.refresh(&kept.refresh_token).await),
        TokenError::Expired
    ));
    assert!(!accepted(&sessions, &kept.access_token).await);
    assert!(sessions.list("alice").await.unwrap().is_empty());
}

async fn the_absolute_lifetime_ends_a_session_however_often_refreshed<St: SessionStore>(store: St) {
    let clock = clock();
    let sessions = sessions(store, &clock, |b| b);
    let mut current = sessions.issue(Login::new("alice")).await.unwrap();
    // Refreshed every 50 minutes: the idle timeout never strikes, the 3-hour lifetime does.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(50 * 60));
        current = sessions.refresh(&current.refresh_token).await.unwrap();
    }
    assert_eq!(
        current.refresh_expires_in,
        30 * 60,
        "capped at the absolute end"
    );
    assert_eq!(current.expires_in, 15 * 60);
    clock.advance(Duration::from_secs(29 * 60));
    current = sessions.refresh(&current.refresh_token).await.unwrap();
    assert_eq!(current.refresh_expires_in, 60);
    assert_eq!(
        current.expires_in, 60,
        "no access token outlives its session"
    );
    clock.advance(Duration::from_secs(60));
    assert!(sessions.refresh(&current.refresh_token).await.is_err());
    assert!(!accepted(&sessions, &current.access_token).await);
}

async fn refresh_and_access_tokens_are_never_taken_for_each_other<St: SessionStore>(store: St) {
    let clock = clock();
    let sessions = sessions(store, &clock, |b| b.issuer("https://auth.test"));
    let login = sessions.issue(Login::new("alice")).await.unwrap();
    match sessions.authenticate(&bearer(&login.refresh_token)).await {
        Err(AuthError::InvalidToken(TokenError::WrongType)) => {}
        other => panic!("a refresh token was taken as an access token: {other:?}"),
    }
    assert!(matches!(
        refused(sessions.refresh(&login.access_token).await),
        TokenError::WrongType
    ));
    assert!(matches!(
        refused(sessions.refresh("not.a.token").await),
        TokenError::Malformed(_)
    ));
    // Neither attempt harmed the session.
    assert!(sessions.refresh(&login.refresh_token).await.is_ok());
}

async fn with_an_audience_refresh_tokens_lack_it_too<St: SessionStore>(store: St) {
    // Refresh tokens carry no audience, so even a resource server that ignores `typ`
    // refuses them.
    let clock = clock();
    let sessions = sessions(store, &clock, |b| b.audience("api"));
    let login = sessions.issue(Login::new("alice")).await.unwrap();
    match sessions.authenticate(&bearer(&login.refresh_token)).await {
        Err(AuthError::InvalidToken(TokenError::MissingClaim(claim))) => assert_eq!(claim, "aud"),
        other => panic!("a refresh token was taken as an access token: {other:?}"),
    }
    assert!(sessions.refresh(&login.refresh_token).await.is_ok());
}

async fn last_use_is_recorded_at_most_once_per_interval<St: SessionStore>(store: St) {
    let clock = clock();
    let sessions = sessions(store, &clock, |b| b.touch_interval(Duration::from_secs(60)));
    let login = sessions.issue(Login::new("alice")).await.unwrap();
    let start = clock.now();
    let last_used = || async { sessions.list("alice").await.unwrap()[0].last_used_at };

    clock.advance(Duration::from_secs(30));
    assert!(accepted(&sessions, &login.access_token).await);
    assert_eq!(
        last_used().await,
        from_unix_seconds(start),
        "within the interval: no write"
    );
    clock.advance(Duration::from_secs(31));
    assert!(accepted(&sessions, &login.access_token).await);
    assert_eq!(last_used().await, from_unix_seconds(start + 61));
    clock.advance(Duration::from_secs(10));
    assert!(accepted(&sessions, &login.access_token).await);
    assert_eq!(last_used().await, from_unix_seconds(start + 61));
}

async fn a_full_user_is_refused_a_new_login<St: SessionStore>(store: St) {
    let clock = clock();
    let sessions = sessions(store, &clock, |b| b.session_limit(2, WhenFull::RefuseNew));
    let first = sessions.issue(Login::new("alice")).await.unwrap();
    sessions.issue(Login::new("alice")).await.unwrap();
    assert!(matches!(
        sessions.issue(Login::new("alice")).await,
        Err(IssueError::TooManySessions)
    ));
    assert!(accepted(&sessions, &first.access_token).await);
    sessions.issue(Login::new("bob")).await.unwrap();
    sessions.revoke("alice", &first.session_id).await.unwrap();
    sessions.issue(Login::new("alice")).await.unwrap();
}

async fn a_full_user_loses_the_oldest_session<St: SessionStore>(store: St) {
    let clock = clock();
    let sessions = sessions(store, &clock, |b| b.session_limit(2, WhenFull::EndOldest));
    let oldest = sessions.issue(Login::new("alice")).await.unwrap();
    clock.advance(Duration::from_secs(1));
    let middle = sessions.issue(Login::new("alice")).await.unwrap();
    clock.advance(Duration::from_secs(1));
    let newest = sessions.issue(Login::new("alice")).await.unwrap();
    assert!(!accepted(&sessions, &oldest.access_token).await);
    assert!(accepted(&sessions, &middle.access_token).await);
    assert!(accepted(&sessions, &newest.access_token).await);
    assert_eq!(sessions.list("alice").await.unwrap().len(), 2);
}

async fn sessions_issued_before_a_time_end<St: SessionStore>(store: St) {
    let clock = clock();
    let sessions = sessions(store, &clock, |b| b);
    let before = sessions.issue(Login::new("alice")).await.unwrap();
    clock.advance(Duration::from_secs(10));
    // To the microsecond: a login authenticated at the very moment of the change survives.
    let password_changed = clock.time();
    let after = sessions.issue(Login::new("alice")).await.unwrap();
    let bob = sessions.issue(Login::new("bob")).await.unwrap();
    assert_eq!(
        sessions
            .revoke_issued_before("alice", password_changed)
            .await
            .unwrap(),
        1
    );
    assert!(!accepted(&sessions, &before.access_token).await);
    assert!(sessions.refresh(&before.refresh_token).await.is_err());
    assert!(accepted(&sessions, &after.access_token).await);
    assert!(accepted(&sessions, &bob.access_token).await);
}

async fn a_user_ends_another_device_but_not_someone_elses<St: SessionStore>(store: St) {
    let clock = clock();
    let sessions = sessions(store, &clock, |b| b);
    let laptop = sessions
        .issue(Login::new("alice").user_agent("laptop"))
        .await
        .unwrap();
    let phone = sessions
        .issue(Login::new("alice").user_agent("phone"))
        .await
        .unwrap();
    let bob = sessions.issue(Login::new("bob")).await.unwrap();
    assert!(!sessions.revoke("alice", &bob.session_id).await.unwrap());
    assert!(accepted(&sessions, &bob.access_token).await);
    assert!(sessions.revoke("alice", &phone.session_id).await.unwrap());
    assert!(!accepted(&sessions, &phone.access_token).await);
    assert!(accepted(&sessions, &laptop.access_token).await);
    let agents: Vec<_> = sessions
        .list("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.user_agent)
        .collect();
    assert_eq!(agents, [Some("laptop".to_owned())]);
}

/// Sessions with the default leeway (30 s), unlike [`sessions`].
fn sessions_with_default_leeway<St: SessionStore>(store: St, clock: &ManualClock) -> Sessions<St> {
    Sessions::builder(Keys::hs256([9; 32]).unwrap(), store)
        .clock(clock.clone())
        .access_ttl(Duration::from_secs(15 * 60))
        .refresh_idle_timeout(Duration::from_secs(HOUR))
        .session_lifetime(Duration::from_secs(3 * HOUR))
        .build()
        .unwrap()
}

/// Sends `token` to the refresh endpoint as JSON or as the OAuth form; the status and the
/// JSON body.
async fn refresh_request<St: SessionStore>(
    sessions: &Sessions<St>,
    token: &str,
    oauth: bool,
) -> (StatusCode, serde_json::Value) {
    let (content_type, body) = if oauth {
        (
            "application/x-www-form-urlencoded",
            format!("grant_type=refresh_token&refresh_token={token}"),
        )
    } else {
        (
            "application/json",
            serde_json::json!({ "refresh_token": token }).to_string(),
        )
    };
    let request = Request::post("/refresh")
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::<Bytes>::from(body))
        .unwrap();
    let response = sessions.refresh_service().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

/// A session refreshed until its refresh token expires exactly at the session's absolute
/// end; that token and the end (Unix seconds).
async fn refreshed_to_the_end<St: SessionStore>(
    sessions: &Sessions<St>,
    clock: &ManualClock,
) -> (Issued, u64) {
    let login = sessions.issue(Login::new("alice")).await.unwrap();
    let end = clock.now() + 3 * HOUR;
    let mut current = login;
    for _ in 0..3 {
        clock.advance(Duration::from_secs(50 * 60));
        current = sessions.refresh(&current.refresh_token).await.unwrap();
    }
    assert_eq!(
        clock.now() + current.refresh_expires_in,
        end,
        "the refresh token ends with the session"
    );
    (current, end)
}

async fn a_refresh_just_after_the_absolute_end_is_refused<St: SessionStore + Clone>(store: St) {
    // Within the default leeway after its `exp`, the refresh token still verifies; its
    // session has ended all the same. A debug build (overflow checks on) runs this: a
    // lifetime computed as `end - now` would panic here.
    for after in [0, 1, 15, 29] {
        let clock = clock();
        let sessions = sessions_with_default_leeway(store.clone(), &clock);
        let (current, end) = refreshed_to_the_end(&sessions, &clock).await;
        clock.set(end + after);
        assert!(
            matches!(
                refused(sessions.refresh(&current.refresh_token).await),
                TokenError::Expired
            ),
            "{after} s after the end"
        );
        let (status, body) = refresh_request(&sessions, &current.refresh_token, false).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{after} s after: {body}");
        assert_eq!(body["error"], "invalid_grant", "{after} s after: {body}");
        let (status, body) = refresh_request(&sessions, &current.refresh_token, true).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{after} s after: {body}");
        assert_eq!(body["error"], "invalid_grant", "{after} s after: {body}");
        assert!(!accepted(&sessions, &current.access_token).await);
    }
}

async fn no_refresh_yields_a_token_outliving_its_session<St: SessionStore>(store: St) {
    // Refreshes at uneven steps (some landing a few seconds before or after the end, with
    // the default leeway): every pair issued ends by the session's end, and so does the
    // stored session; past the end, every refresh is refused.
    // From the login: 2 999 s, 3 000, 6 599, ..., 9 705, 10 795, 10 798 (the last
    // refresh), then 10 805: 5 s past the end, within the leeway of the token's `exp`.
    let steps = [
        2_999, 1, 3_599, 17, 1_200, 59, 1_799, 29, 1, 1, 1_090, 3, 7, 600,
    ];
    let clock = clock();
    let sessions = sessions_with_default_leeway(store, &clock);
    let login = sessions.issue(Login::new("alice")).await.unwrap();
    let end = clock.now() + 3 * HOUR;
    let mut current = login;
    let mut refreshed = 0;
    for step in steps.iter().cycle().take(40) {
        clock.advance(Duration::from_secs(*step));
        let now = clock.now();
        match sessions.refresh(&current.refresh_token).await {
            Ok(issued) => {
                assert!(now < end, "refreshed at {now}, the session ended at {end}");
                assert!(now + issued.expires_in <= end);
                assert!(now + issued.refresh_expires_in <= end);
                let claims = sessions
                    .verify_without_session_check(&issued.access_token)
                    .unwrap();
                assert!(claims.exp <= end, "access token until {}", claims.exp);
                for session in sessions.list("alice").await.unwrap() {
                    assert!(session.expires_at <= from_unix_seconds(end));
                }
                refreshed += 1;
                current = issued;
            }
            Err(error) => {
                // Idle (the token expired) or past the end: either way, never again.
                assert!(
                    matches!(
                        error,
                        IssueError::Refused(TokenError::Expired | TokenError::Revoked)
                    ),
                    "{error:?}"
                );
                assert!(
                    now >= end || now >= clock.now() - step + current.refresh_expires_in,
                    "refused at {now}, before the end and the idle timeout: {error:?}"
                );
                break;
            }
        }
    }
    assert_eq!(refreshed, 12, "the last refresh 2 s before the end");
    assert_eq!(clock.now(), end + 5, "refused 5 s after the end");
    assert!(
        sessions.refresh(&current.refresh_token).await.is_err(),
        "a refresh after the end"
    );
}

async fn the_refresh_path_bounds_the_length_before_parsing<St: SessionStore>(store: St) {
    // A header that does not parse: read before the length was checked, it would be named
    // malformed.
    let clock = clock();
    let sessions = sessions(store, &clock, |b| b.max_token_len(1024));
    let garbage = format!("!{}.e30.sig", "!".repeat(1024));
    assert!(matches!(
        refused(sessions.refresh(&garbage).await),
        TokenError::TooLong
    ));
    // A real refresh token made too long is refused as such, and the session is untouched.
    let login = sessions.issue(Login::new("alice")).await.unwrap();
    let padded = format!("{}{}", login.refresh_token, "A".repeat(1024));
    assert!(matches!(
        refused(sessions.refresh(&padded).await),
        TokenError::TooLong
    ));
    for oauth in [false, true] {
        let (status, body) = refresh_request(&sessions, &garbage, oauth).await;
        assert_eq!(body["error_description"], "token too long", "{body}");
        assert_ne!(status, StatusCode::OK);
    }
    // Exactly at the limit, the length passes and the header is read.
    let at_limit = format!("!{}", "!".repeat(1023));
    assert!(matches!(
        refused(sessions.refresh(&at_limit).await),
        TokenError::Malformed(_)
    ));
    assert!(sessions.refresh(&login.refresh_token).await.is_ok());
}

macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(MemoryStore::new()).await;
                }
            )*
        }

        #[cfg(feature = "redis")]
        mod redis {
            use super::*;
            use tower_jwt_auth::store::RedisStore;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let redis = support::TestRedis::get();
                    let store = RedisStore::connect(redis.url())
                        .await
                        .unwrap()
                        .prefix(support::unique_prefix(stringify!($test)));
                    super::$test(store).await;
                }
            )*
        }
    };
}

on_both_stores!(
    rotation_gives_a_working_pair_and_retires_the_old_token,
    a_reused_refresh_token_ends_the_whole_session,
    within_grace_the_racing_tab_is_refused_but_the_session_goes_on,
    strict_race,
    forgiving_race,
    an_idle_session_expires,
    the_absolute_lifetime_ends_a_session_however_often_refreshed,
    refresh_and_access_tokens_are_never_taken_for_each_other,
    with_an_audience_refresh_tokens_lack_it_too,
    last_use_is_recorded_at_most_once_per_interval,
    a_full_user_is_refused_a_new_login,
    a_full_user_loses_the_oldest_session,
    sessions_issued_before_a_time_end,
    a_user_ends_another_device_but_not_someone_elses,
    a_refresh_just_after_the_absolute_end_is_refused,
    no_refresh_yields_a_token_outliving_its_session,
    the_refresh_path_bounds_the_length_before_parsing,
);
