-- Every live session deleted from jwt_sessions is announced on the channel the near-caches
-- listen on, whoever deletes it: the store itself (which also sends the same event, merged
-- into one by PostgreSQL within a transaction), an administrator, or a foreign key cascade
-- from the application's users table. Expired rows (the sweep) are not announced: caches
-- already honour a session's end.
CREATE FUNCTION jwt_sessions_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.expires_at > extract(epoch FROM clock_timestamp())::bigint THEN
        PERFORM pg_notify(
            'jwt_sessions_ended',
            'S' || translate(encode(OLD.id, 'base64'), '+/=', '-_')
        );
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jwt_sessions_ended
    AFTER DELETE ON jwt_sessions
    FOR EACH ROW EXECUTE FUNCTION jwt_sessions_ended();
