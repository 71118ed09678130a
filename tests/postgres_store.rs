//! The PostgreSQL store as an application uses it: two instances sharing logins and
//! logouts, and the documented foreign key that ends a deleted user's sessions.

mod sql_support;

use tower_jwt_auth::store::{PostgresStore, SessionStore};
use tower_jwt_auth::{AuthError, Keys, Login, Sessions, TokenError};

use sql_support::PgSchema;

const KEY: [u8; 32] = [7; 32];

fn sessions(store: PostgresStore) -> Sessions<PostgresStore> {
    Sessions::builder(Keys::hs256(KEY).unwrap(), store)
        .build()
        .unwrap()
}

fn revoked<T>(result: Result<T, AuthError>) -> bool {
    matches!(result, Err(AuthError::InvalidToken(TokenError::Revoked)))
}

#[tokio::test]
async fn two_instances_accept_each_others_logins_and_logouts() {
    let schema = PgSchema::new("two_instances").await;
    let one = sessions(schema.store().await);
    let two = sessions(schema.store().await);
    let issued = one.issue(Login::new("alice")).await.unwrap();
    assert!(two.authenticate_token(&issued.access_token).await.is_ok());
    let refreshed = two.refresh(&issued.refresh_token).await.unwrap();
    assert!(
        one.authenticate_token(&refreshed.access_token)
            .await
            .is_ok()
    );
    // The retired refresh token, presented to the other instance, ends the session there.
    assert!(one.refresh(&issued.refresh_token).await.is_err());
    assert!(revoked(
        two.authenticate_token(&refreshed.access_token).await
    ));

    let a = one.issue(Login::new("alice")).await.unwrap();
    let b = two.issue(Login::new("alice")).await.unwrap();
    assert_eq!(one.revoke_all("alice").await.unwrap(), 2);
    assert!(revoked(two.authenticate_token(&a.access_token).await));
    assert!(revoked(two.authenticate_token(&b.access_token).await));
}

/// The foreign keys shown in the store's docs, on a `users` table of the application's.
#[tokio::test]
async fn deleting_a_user_ends_their_sessions() {
    let schema = PgSchema::new("foreign_key").await;
    let store = schema.store().await;
    let pool = store.pool();
    for statement in [
        "CREATE TABLE users (username text PRIMARY KEY)",
        "INSERT INTO users VALUES ('alice'), ('bob')",
        "ALTER TABLE jwt_sessions \
         ADD FOREIGN KEY (sub) REFERENCES users (username) ON DELETE CASCADE",
    ] {
        sqlx::query(statement).execute(pool).await.unwrap();
    }
    let sessions = sessions(store.clone());
    let alice = sessions.issue(Login::new("alice")).await.unwrap();
    let bob = sessions.issue(Login::new("bob")).await.unwrap();
    // A user the table does not know cannot log in.
    assert!(sessions.issue(Login::new("mallory")).await.is_err());

    sqlx::query("DELETE FROM users WHERE username = 'alice'")
        .execute(pool)
        .await
        .unwrap();
    assert!(revoked(
        sessions.authenticate_token(&alice.access_token).await
    ));
    assert!(sessions.authenticate_token(&bob.access_token).await.is_ok());
}

#[tokio::test]
async fn the_uuid_key_variant_of_the_foreign_key_works_too() {
    let schema = PgSchema::new("foreign_key_uuid").await;
    let store = schema.store().await;
    let pool = store.pool();
    let id = "6f1c2a52-8a8e-4b40-9d55-0d8f6a1f4c11";
    for statement in [
        "CREATE TABLE users (id uuid PRIMARY KEY)".to_owned(),
        format!("INSERT INTO users VALUES ('{id}')"),
        "ALTER TABLE jwt_sessions \
         ADD COLUMN user_id uuid GENERATED ALWAYS AS (sub::uuid) STORED \
         REFERENCES users (id) ON DELETE CASCADE"
            .to_owned(),
    ] {
        sqlx::query(&statement).execute(pool).await.unwrap();
    }
    let sessions = sessions(store.clone());
    let issued = sessions.issue(Login::new(id)).await.unwrap();
    assert!(
        sessions
            .authenticate_token(&issued.access_token)
            .await
            .is_ok()
    );
    sqlx::query(&format!("DELETE FROM users WHERE id = '{id}'"))
        .execute(pool)
        .await
        .unwrap();
    assert!(revoked(
        sessions.authenticate_token(&issued.access_token).await
    ));
    assert!(store.list(id, 0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    let schema = PgSchema::new("migrate_twice").await;
    let store = schema.store().await;
    store.migrate().await.unwrap();
    let other = schema.store().await;
    other.migrate().await.unwrap();
}
