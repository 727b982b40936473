"""Host-side PostgreSQL actions: everything that connects to a database runs here, on the host."""

if __name__ != "__main__":
    from turnout.hostside.base import HostsideError, host_dsn


def action_postgres_server(params: dict) -> dict:
    """Connect with the DSN named by ``dsn_env`` and describe the server (no secrets)."""
    import psycopg

    dsn = host_dsn(params["dsn_env"], params.get("env_file"))
    timeout = int(params.get("connect_timeout", 10))
    try:
        with psycopg.connect(dsn, connect_timeout=timeout, autocommit=True) as conn:
            row = conn.execute(
                "SELECT current_setting('server_version'), current_database(), current_user"
            ).fetchone()
            host, port = conn.info.host, conn.info.port
    except psycopg.Error as error:
        raise HostsideError(f"cannot connect with {params['dsn_env']}: {error}") from None
    return {
        "server_version": row[0],
        "database": row[1],
        "user": row[2],
        "host": host,
        "port": port,
    }
