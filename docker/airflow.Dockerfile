# Airflow image for the demo: apache/airflow plus the `producer` and `consumer` binaries in
# /usr/local/bin. The DAG dags/random_user_pipeline.py runs both with BashOperator: the producer
# (task produce_users), then `consumer await-run` (task await_cassandra), which only watches the
# consumer group of the Compose `consumer` service until the run's users are in Cassandra.
#
#   docker build -f docker/airflow.Dockerfile -t random-user-pipeline/airflow .
#
# The build context is the repository root. The builder stage below is a verbatim copy of the one
# in docker/rust.Dockerfile (tests/compose_check.py checks it), so both files share cached layers.

ARG RUST_VERSION=1.95.0
ARG AIRFLOW_VERSION=3.3.2

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

FROM apache/airflow:${AIRFLOW_VERSION}
USER root
# The producer and the consumer load libssl, libcrypto, libz, libgcc_s, libm and libc (ldd); the Airflow image
# (Debian) normally has them already, this makes it explicit. ca-certificates: TLS to the Random User API.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g libgcc-s1 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -m 0775 -o airflow -g 0 /opt/airflow/auth
COPY --from=builder /out/producer /usr/local/bin/producer
COPY --from=builder /out/consumer /usr/local/bin/consumer
# Fail the build, not the first DAG run, if a binary cannot start here.
RUN /usr/local/bin/producer --version && /usr/local/bin/consumer --version
ENV PRODUCER_BIN=/usr/local/bin/producer \
    CONSUMER_BIN=/usr/local/bin/consumer
USER airflow
