"""Operations: the HTTP server (health, readiness, metrics, status), loop health, sd_notify."""
