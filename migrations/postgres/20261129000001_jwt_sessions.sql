-- The allowlist of live sessions of tower-jwt-auth: one row per login. No token is stored,
-- only the SHA-256 digest of the current refresh token. Times are integers: microseconds
-- since the Unix epoch for creation and authentication (they order logins), seconds for
-- the rest (as tokens carry them).
CREATE TABLE jwt_sessions (
    id                 bytea  PRIMARY KEY CHECK (octet_length(id) = 16),
    sub                text   NOT NULL,
    -- Creation order within a user, whatever the clocks say: the oldest is the lowest.
    seq                bigint GENERATED ALWAYS AS IDENTITY,
    created_at         bigint NOT NULL,
    authenticated_at   bigint NOT NULL,
    expires_at         bigint NOT NULL,
    last_used_at       bigint NOT NULL,
    user_agent         text,
    address            inet,
    -- The 64 bits of an unsigned count: past 2^63 it reads as negative here.
    refresh_generation bigint NOT NULL,
    refresh_digest     bytea  NOT NULL CHECK (octet_length(refresh_digest) = 32),
    refresh_rotated_at bigint NOT NULL
);

-- A user's sessions, oldest first: listings, the session limit, logout everywhere.
CREATE INDEX jwt_sessions_by_user ON jwt_sessions (sub, seq);
-- The sweep of expired sessions.
CREATE INDEX jwt_sessions_by_expiry ON jwt_sessions (expires_at);

-- Per user, the "not before" mark: no session authenticated before `not_before` is
-- created while the mark is kept (until `keep_until`); both in microseconds.
CREATE TABLE jwt_session_marks (
    sub        text   PRIMARY KEY,
    not_before bigint NOT NULL,
    keep_until bigint NOT NULL
);

CREATE INDEX jwt_session_marks_by_expiry ON jwt_session_marks (keep_until);
