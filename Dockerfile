# Pynomaly Detection container image.
#
#   docker build -t pynomaly/detection:v0.2.0 .
#
# Stage 1 compiles the release binary (librdkafka and RocksDB are built from
# source by their -sys crates, hence cmake/clang). Dependencies get their own
# layer: it is rebuilt only when Cargo.toml or Cargo.lock change.
# Stage 2 is a slim Debian with the shared libraries the binary links, running
# as UID 1000 and working with a read-only root filesystem (state lives on the
# /var/lib/pynomaly volumes, scratch in /tmp).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder

# Versions come from the pinned Debian release and its security updates;
# pinning exact package versions would break the build at every point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        cmake clang libclang-dev libssl-dev libsasl2-dev zlib1g-dev libcurl4-openssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# Dependency layer: build every dependency against a stub crate. Stub files are
# also made for [[bench]]/[[test]]/[[example]] targets the manifest declares,
# since cargo refuses a manifest whose target files are missing.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches tests examples \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && awk '/^\[\[(bench|test|example)\]\]/ { kind = $0; gsub(/[\[\]]/, "", kind); next } \
            /^\[/ { kind = "" } \
            kind != "" && /^name *=/ { n = $0; sub(/^name *= *"/, "", n); sub(/".*/, "", n); \
              dir = (kind == "bench") ? "benches" : (kind == "test") ? "tests" : "examples"; \
              print "fn main() {}" > (dir "/" n ".rs") } \
            kind != "" && /^path *=/ { f = $0; sub(/^path *= *"/, "", f); sub(/".*/, "", f); \
              system("mkdir -p \"$(dirname " f ")\""); print "fn main() {}" > f }' Cargo.toml \
    && cargo build --release --locked --bin pynomaly \
    && rm -rf src benches tests examples \
        target/release/pynomaly target/release/deps/pynomaly* \
        target/release/.fingerprint/pynomaly-* target/release/deps/libpynomaly*

# The real sources (src/, and benches/ + tests/ when present: .dockerignore is
# an allow-list). Only this layer is rebuilt on a code change.
COPY . .
RUN cargo build --release --locked --bin pynomaly \
    && install -m 0755 target/release/pynomaly /usr/local/bin/pynomaly \
    && /usr/local/bin/pynomaly --help > /dev/null


FROM debian:${DEBIAN_RELEASE}-slim AS runtime

ARG VERSION=v0.2.0
LABEL org.opencontainers.image.title="pynomaly-detection" \
      org.opencontainers.image.description="Streaming anomaly detection on Kafka" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# Runtime libraries of the binary: TLS (libssl3), SASL (libsasl2-2, with the
# SCRAM/PLAIN modules), the C++ runtime of RocksDB. Same pinning reason as above.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates libssl3 libsasl2-2 libsasl2-modules libcurl4 libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 pynomaly \
    && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /var/lib/pynomaly \
        --shell /usr/sbin/nologin pynomaly \
    && mkdir -p /var/lib/pynomaly/data /var/lib/pynomaly/models \
        /var/lib/pynomaly/cache /var/lib/pynomaly/logs \
    && chown -R 1000:1000 /var/lib/pynomaly

COPY --from=builder /usr/local/bin/pynomaly /usr/local/bin/pynomaly

ENV PYNOMALY_DATA_DIR=/var/lib/pynomaly/data \
    PYNOMALY_ADMIN_PORT=9090 \
    TMPDIR=/tmp

# Everything the process writes goes to these volumes (and /tmp), so the
# container runs with a read-only root filesystem.
VOLUME ["/var/lib/pynomaly/data", "/var/lib/pynomaly/models", "/var/lib/pynomaly/cache", "/var/lib/pynomaly/logs"]
WORKDIR /var/lib/pynomaly
USER 1000:1000

# Admin HTTP: /healthz, /readyz, /metrics.
EXPOSE 9090

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["pynomaly", "healthcheck"]

ENTRYPOINT ["pynomaly"]
CMD ["run"]
