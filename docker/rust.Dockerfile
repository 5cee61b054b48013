# Rust images of the pipeline: `consumer` and `producer` targets, one shared builder stage.
#
#   docker build -f docker/rust.Dockerfile --target consumer -t random-user-pipeline/consumer .
#   docker build -f docker/rust.Dockerfile --target producer -t random-user-pipeline/producer .
#
# The build context is the repository root. The builder stage is repeated verbatim in
# docker/airflow.Dockerfile (which needs the producer binary); tests/compose_check.py checks that
# the two copies stay identical, so Docker's layer cache builds them once.

ARG RUST_VERSION=1.95.0

# ---- builder (keep identical to docker/airflow.Dockerfile) -----------------------------------
FROM rust:${RUST_VERSION}-bookworm AS builder
# cmake + build-essential: librdkafka (rdkafka "cmake-build", with "ssl" for SASL_SSL) and aws-lc-sys; the -dev packages are
# what librdkafka's build probes for.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake libcurl4-openssl-dev libsasl2-dev libssl-dev pkg-config build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# 1. Dependency layer: manifests + stub sources, so that editing the code does not rebuild the
#    ~400 crates of dependencies.
COPY Cargo.toml Cargo.lock ./
COPY crates/domain/Cargo.toml crates/domain/Cargo.toml
COPY crates/common/Cargo.toml crates/common/Cargo.toml
COPY crates/producer/Cargo.toml crates/producer/Cargo.toml
COPY crates/consumer/Cargo.toml crates/consumer/Cargo.toml
COPY crates/bench/Cargo.toml crates/bench/Cargo.toml
COPY tests/integration/Cargo.toml tests/integration/Cargo.toml
# The beds' test crates are workspace members too: their manifests (and empty stubs, kept, since
# they are never built here) let cargo load the workspace.
COPY tests/bed/Cargo.toml tests/bed/Cargo.toml
COPY tests/cluster/Cargo.toml tests/cluster/Cargo.toml
COPY tests/secure/Cargo.toml tests/secure/Cargo.toml
COPY tests/monitoring/Cargo.toml tests/monitoring/Cargo.toml
RUN for d in crates/domain crates/common crates/producer crates/consumer crates/bench tests/integration tests/bed tests/cluster tests/secure tests/monitoring; do \
      mkdir -p "$d/src" && : > "$d/src/lib.rs"; \
    done \
 && for b in producer consumer; do echo 'fn main() {}' > "crates/$b/src/main.rs"; done \
 && cargo build --release --locked -p producer -p consumer \
 && rm -rf crates/*/src tests/integration/src
# 2. The real sources. `touch` makes them newer than the stub build, whatever mtimes COPY keeps,
#    so cargo rebuilds the workspace crates (only those).
COPY crates crates
COPY schemas schemas
COPY tests/integration tests/integration
# The exact build command; CI runs the same cargo invocation:
#   cargo build --release --locked -p producer -p consumer
RUN find crates tests/integration -name '*.rs' -exec touch {} + \
 && cargo build --release --locked -p producer -p consumer \
 && install -D -m 0755 target/release/producer /out/producer \
 && install -D -m 0755 target/release/consumer /out/consumer
# ---- end of builder ---------------------------------------------------------------------------

# ---- runtime root: exactly what the binaries load (libc, libm, libgcc_s, libssl, libcrypto and the dynamic loader;
# zlib is linked statically), the CA roots for HTTPS to the Random User API, and an unprivileged
# user. Taken from the builder's own Debian, so the glibc matches the one the binaries were linked
# against. The paths come from `ldd` on the binaries themselves, never spelled out here: the
# loader's path and the multiarch library directory differ per CPU architecture, and this file
# builds on every platform the rust image exists for (tests/images fails on an architecture
# literal in docker/).
FROM builder AS runtime-root
RUN set -eu \
 && mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp \
 && ldd /out/producer /out/consumer > /tmp/ldd.txt \
 && if grep -q 'not found' /tmp/ldd.txt; then cat /tmp/ldd.txt; exit 1; fi \
 && awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && NF == 2 { print $1 }' /tmp/ldd.txt \
      | sort -u > /tmp/libs.txt \
 && test -s /tmp/libs.txt \
 && while read -r lib; do \
      mkdir -p "/rootfs$(dirname "$lib")" && cp -L "$lib" "/rootfs$lib"; \
    done < /tmp/libs.txt \
 && echo "runtime libraries for $(dpkg --print-architecture):" && cat /tmp/libs.txt \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && echo 'app:x:10001:10001:app:/nonexistent:/sbin/nologin' > /rootfs/etc/passwd \
 && echo 'app:x:10001:' > /rootfs/etc/group \
 && echo 'hosts: files dns' > /rootfs/etc/nsswitch.conf \
 && chmod 1777 /rootfs/tmp

# No shell, no package manager: nothing in the image but the above and one binary.
FROM scratch AS runtime
COPY --from=runtime-root /rootfs/ /
# OpenSSL (librdkafka's TLS to Kafka) finds the CA roots here when KAFKA_SSL_CA_LOCATION is unset:
# its built-in default directory does not exist in this image.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 10001:10001

# ---- consumer: long-running Kafka -> Cassandra writer; /healthz and /metrics on :9400 ----------
FROM runtime AS consumer
COPY --from=builder /out/consumer /usr/local/bin/consumer
EXPOSE 9400
# No shell or curl in this image: `consumer --healthcheck` GETs /healthz on CONSUMER_HTTP_ADDR.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=6 \
  CMD ["/usr/local/bin/consumer", "--healthcheck"]
ENTRYPOINT ["/usr/local/bin/consumer"]

# ---- producer: one run per container (Random User API -> Kafka) --------------------------------
FROM runtime AS producer
COPY --from=builder /out/producer /usr/local/bin/producer
ENTRYPOINT ["/usr/local/bin/producer"]
