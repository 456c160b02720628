# jetwatch container image: non-root, ledger on a volume, health from the ops server.
#
#   docker build -t jetwatch .
#   docker run -d --name jetwatch --stop-timeout 30 \
#     -v "$PWD/config.toml:/etc/jetwatch/config.toml:ro" \
#     -v jetwatch-ledger:/var/lib/jetwatch -v /srv/ingest:/srv/ingest \
#     -p 127.0.0.1:9108:9108 -e JETWATCH_JET__CLIENT_SECRET_FILE=/run/secrets/jet_client_secret \
#     jetwatch
#
# --stop-timeout 30: Docker's default of 10 s is below the daemon's shutdown_timeout_seconds
# (20), and in-flight work should be persisted before the SIGKILL.

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY jetwatch/ jetwatch/
# Installed into a prefix that the final stage copies whole: no pip, wheels or build
# tools end up in the runtime image.
RUN pip install --prefix=/install .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="jetwatch" \
      org.opencontainers.image.description="Hot-folder daemon for the Signiant Jet API"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    JETWATCH_HTTP__LISTEN=0.0.0.0:9108
# A fixed uid/gid so bind-mounted ingest folders can be granted to it on the host
# (chown/chgrp to 10001, or run with --group-add <gid of the folder>).
RUN groupadd --system --gid 10001 jetwatch \
 && useradd --system --uid 10001 --gid jetwatch --home-dir /var/lib/jetwatch \
      --no-create-home --shell /usr/sbin/nologin jetwatch \
 && install -d -o jetwatch -g jetwatch -m 0750 /var/lib/jetwatch \
 && install -d -m 0755 /etc/jetwatch
COPY --from=builder /install /usr/local

USER jetwatch:jetwatch
WORKDIR /var/lib/jetwatch
# The ledger: set the ledger path in config.toml under this directory. The watched folders
# are mounted by the user (e.g. -v /srv/ingest:/srv/ingest).
VOLUME ["/var/lib/jetwatch"]
# The ops server listens on all interfaces inside the container (JETWATCH_HTTP__LISTEN
# above) so the port can be published; publish it on the host's loopback only.
EXPOSE 9108
# No curl in a slim image: the interpreter is already there. The check uses loopback,
# which the 0.0.0.0 listener also serves. urlopen raises on a 503, so exit status 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9108/healthz', timeout=4)"]
ENTRYPOINT ["jetwatch"]
CMD ["run", "--config", "/etc/jetwatch/config.toml"]
