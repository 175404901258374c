# syntax=docker/dockerfile:1
#
# jwtd as a container image: a Rust builder stage, then a slim Debian runtime with only the
# binary and config/.
#
#   docker build -t jwtd .
#   docker compose up -d --build          # with PostgreSQL and Redis: see docker-compose.yml
#
# The image runs with JWTD_ENV=production, so it refuses to start on the development HMAC key:
# give it an asymmetric key (JWTD__JWT__ALGORITHM + JWTD__JWT__PRIVATE_KEY_FILE) or a real
# JWTD__JWT__SIGNING_KEY, and JWTD__SERVER__PUBLIC_URL and JWTD__SERVER__METRICS_BIND (e.g.
# 0.0.0.0:9100, a port you do not publish). Every other setting is a JWTD__SECTION__KEY
# environment variable.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder

WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    CARGO_NET_RETRY=5

# 1. Dependencies only. The workspace's manifests and the lock file, with stub targets in place
#    of the sources, so this slow layer is rebuilt only when Cargo.toml / Cargo.lock change.
#    Every workspace member's manifest must be here (cargo loads the whole workspace): a new
#    member needs a line below. SQLite (bundled) and aws-lc are compiled with the image's gcc.
COPY Cargo.toml Cargo.lock ./
COPY migration/Cargo.toml migration/Cargo.toml
COPY bench/Cargo.toml bench/Cargo.toml
COPY tests/support/Cargo.toml tests/support/Cargo.toml
RUN mkdir -p src migration/src bench/src bench/benches tests/support/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs migration/src/lib.rs tests/support/src/lib.rs \
    && echo 'fn main() {}' > bench/src/main.rs \
    && echo 'fn main() {}' > bench/benches/hot_paths.rs
RUN cargo fetch --locked \
    && cargo build --release --frozen -p jwtd

# 2. jwtd itself. config/default.toml is compiled in (include_str!), so config/ is needed here.
#    The stubs' build is newer than the copied sources' mtimes: touch them so cargo rebuilds.
COPY config config
COPY migration migration
COPY src src
RUN touch src/main.rs src/lib.rs migration/src/lib.rs \
    && cargo build --release --frozen -p jwtd \
    && install -m 0755 target/release/jwtd /usr/local/bin/jwtd \
    && /usr/local/bin/jwtd --version

# ---------------------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

# ca-certificates: TLS to PostgreSQL. Not version-pinned: rebuild the image to pick up
# security fixes.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# A fixed, non-root uid/gid (10001): key files mounted into the container must be readable by
# it (`chown 10001:10001 keys/*.pem`, mode 0600).
RUN groupadd --system --gid 10001 jwtd \
    && useradd --system --uid 10001 --gid jwtd --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin jwtd

# The config crate reads config/default.toml and config/{JWTD_ENV}.toml relative to the working
# directory (`--config-dir`, default "config"); JWTD_CONFIG_DIR pins it whatever the workdir.
# The SQLite default (sqlite://data/jwtd.db) lands in /app/data; `jwtd keys generate` writes
# to /app/keys. Both belong to the service user; config/ stays root-owned and read-only.
WORKDIR /app
COPY --from=builder /usr/local/bin/jwtd /usr/local/bin/jwtd
COPY config/ /app/config/
RUN mkdir -p /app/data /app/keys \
    && chown jwtd:jwtd /app/data /app/keys \
    && chmod 0750 /app/data /app/keys

ENV JWTD_ENV=production \
    JWTD_CONFIG_DIR=/app/config \
    JWTD__SERVER__BIND=0.0.0.0:8000

USER 10001:10001

# Only used with the SQLite default; with PostgreSQL (docker-compose.yml) nothing is written here.
VOLUME ["/app/data"]
EXPOSE 8000

# Ready = the database and the revocation store answer (503 otherwise). `jwtd healthcheck` asks
# the server at JWTD__SERVER__BIND (on loopback) and exits 0 only on a 200, within 4 s.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["jwtd", "healthcheck"]

LABEL org.opencontainers.image.title="jwtd" \
      org.opencontainers.image.description="A standalone, SimpleJWT-compatible token-issuing service" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"

ENTRYPOINT ["jwtd"]
CMD ["serve"]
