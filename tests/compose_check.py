#!/usr/bin/env python3
"""Static checks of docker-compose.yml, .env and docker/ against the binaries and the laptop they run on.

  python3 tests/compose_check.py [--compose docker-compose.yml] [--producer-bin PATH] [--consumer-bin PATH]
                                 [--no-self-test]

Binaries: --producer-bin / --consumer-bin, else $PRODUCER_BIN / $CONSUMER_BIN, else
target/release/<name>, else target/debug/<name> (build them first: cargo build -p producer -p consumer).

Checks, one result line each, then `compose: N passed, M failed` (exit 1 if any failed):
  spec          compose-go (the loader `docker compose` v2 uses: the Compose Specification's JSON
                schema, interpolation from .env, consistency) accepts the file; tests/compose.d/ is
                built once into .stack/compose-check/ (Go >= 1.21 and the Go module proxy)
  config        `docker-compose -f <file> config -q` (compose 1.29, or `docker compose`) accepts it
  consumer-env  every variable set on the consumer service is one `consumer --help` lists ([env: NAME])
  producer-env  the same for the Airflow services, whose tasks run the producer and `consumer
                await-run`: each variable is one `producer --help` or `consumer --help` lists
  airflow-await the DAG's second task watches what the consumer service does: the Airflow services'
                KAFKA_TOPIC and KAFKA_DLQ_TOPIC are the consumer service's, and the DAG's
                `consumer_group` default (dags/random_user_pipeline.py) is its KAFKA_GROUP_ID
  readiness     every long-running service has a healthcheck; every depends_on has a condition;
                every one-shot service is awaited with service_completed_successfully (so that
                `docker compose up -d --wait` accepts its exit 0)
  stop-grace    the consumer service and the Airflow service that runs the producer (the scheduler)
                have a stop_grace_period longer than their drain on SIGTERM: the consumer's
                DRAIN_GRACE (crates/consumer/src/pipeline/rebalance.rs), the producer's
                KAFKA_DELIVERY_TIMEOUT (its default in crates/producer/src/cli.rs), plus 5 s
  builder-stage the builder stage of docker/rust.Dockerfile and docker/airflow.Dockerfile is identical
  heap          every JVM service (Confluent images, Cassandra) sets its heap explicitly, with -Xmx
                (MAX_HEAP_SIZE + HEAP_NEWSIZE for Cassandra) at most 75% of its mem_limit
  memory        every service has a mem_limit; the long-running ones add up to <= 6 GiB
  light-probes  no healthcheck starts a JVM (kafka-topics, nodetool, cub, java, ...)
  control-center the broker runs Confluent's metrics reporter (cp-server), and every replication
                factor / replica count of the broker's, Control Center's and the registry's
                internal topics is 1 (one broker)
  airflow-secrets every Airflow service sets AIRFLOW__API__SECRET_KEY, AIRFLOW__API_AUTH__JWT_SECRET
                and AIRFLOW__API_AUTH__JWT_ISSUER from .env (${AIRFLOW_SECRET_KEY},
                ${AIRFLOW_JWT_SECRET}, ${AIRFLOW_JWT_ISSUER}, never literals), all to the same
                values, and .env's AIRFLOW_JWT_SECRET has at least 64 bytes (HS512)
  consumer-scale the consumer can run as N replicas (`up --scale consumer=3`): no container_name,
                no hostname, no fixed host port; its metrics port is exposed on the network
  arch          no architecture-specific literal in docker/ (tests/images.d/arch_literals.py) and
                no `platform:` pin in the Compose file
  pushgateway-env the Airflow services set PRODUCER_PUSHGATEWAY_URL and `producer --help` lists it
                (the producer itself reads it, not only `consumer await-run`)

The monitoring profile (`docker compose --profile monitoring`: Prometheus, Alertmanager, Pushgateway,
Grafana) is checked as the project that profile makes, with the profile's services enabled:
monitoring-spec, monitoring-config (`config -q` with `--profile monitoring`), monitoring-readiness,
monitoring-heap, monitoring-light-probes as above, and
  monitoring-memory the long-running limits with the profile add up to <= 7 GiB
  monitoring    Prometheus, Alertmanager, the Pushgateway and Grafana are in the profile; every
                published port is on 127.0.0.1; every bind-mounted file or directory exists; the
                Prometheus config they mount scrapes the consumer service by DNS on its
                CONSUMER_HTTP_ADDR port and the Pushgateway service with honor_labels, alerts to the
                Alertmanager service, and its rule_files globs match files; the Airflow services'
                PRODUCER_PUSHGATEWAY_URL is the Pushgateway service; Grafana's provisioned data
                source is the Prometheus service and its dashboard provider reads a mounted
                directory that holds a dashboard
  self-test     each check above (but config and the env checks) FAILS on a deliberately broken copy
                of the files and passes on an unbroken copy (so that a green run means something)

The security override docker-compose.secure.yml (when present) is checked merged onto the main file, as
`docker compose -f docker-compose.yml -f docker-compose.secure.yml --env-file .env --env-file
.env.secure.example` loads it: secure-spec, secure-config, secure-consumer-env, secure-producer-env,
secure-readiness, secure-heap, secure-memory, secure-light-probes as above, and
  secrets        no secret (a variable named *PASSWORD*, *SECRET*, *USER_INFO*, *JAAS_CONFIG*) is a literal
                in either file: each is interpolated (${...}); every secret the override interpolates is
                in .env.secure.example with a `change-me` placeholder and not in the committed .env;
                every service of the override waits (transitively) for the one-shot `secrets-check`,
                whose script names each of those secrets; .env.secure is git-ignored
  secure-self-test  `secrets` fails on broken copies (a literal password, a service that does not wait
                for secrets-check, a secret missing from the example or from the check)

Needs PyYAML (Debian: apt-get install -y python3-yaml), Go >= 1.21 for `spec` (the toolchain that
tests/compose.d/go.mod names is fetched through the Go module proxy when the local one is older)
and docker-compose for `config` (Debian: apt-get install -y docker-compose).

The checks are in tests/compose_checks/, one module per subject (its __init__.py lists them).
"""
import argparse
import os
import sys
import time

# Before the imports below: running the checks must not leave __pycache__ in the tree.
sys.dont_write_bytecode = True

# The package sits next to this script, whose directory is on sys.path.
from compose_checks.airflow import check_airflow_await, check_airflow_secrets  # noqa: E402
from compose_checks.control_center import check_control_center  # noqa: E402
from compose_checks.dockerfiles import check_arch, check_builder  # noqa: E402
from compose_checks.environment import check_env, check_pushgateway_env, find_bin  # noqa: E402
from compose_checks.loaders import check_config, check_spec  # noqa: E402
from compose_checks.model import (ROOT, airflow_services, consumer_services, load_model,  # noqa: E402
                                  load_spec, services_of, yaml)
from compose_checks.monitoring import check_profile  # noqa: E402
from compose_checks.report import record, results  # noqa: E402
from compose_checks.resources import check_heap, check_light_probes, check_memory, memory_info  # noqa: E402
from compose_checks.secure import SECURE_COMPOSE, check_secure  # noqa: E402
from compose_checks.self_test import self_test  # noqa: E402
from compose_checks.services import check_consumer_scale, check_readiness  # noqa: E402
from compose_checks.stopping import check_stop_grace  # noqa: E402

__all__ = ["load_spec", "main"]  # load_spec: tests/images resolves docker-compose.yml through it


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--compose", default=os.path.join(ROOT, "docker-compose.yml"))
    ap.add_argument("--producer-bin")
    ap.add_argument("--consumer-bin")
    ap.add_argument("--no-self-test", action="store_true")
    args = ap.parse_args()

    compose = os.path.abspath(args.compose)
    compose_dir = os.path.dirname(compose)
    env_file = os.path.join(compose_dir, ".env")
    t0 = time.time()

    m = load_model(compose, env_file, os.path.join(ROOT, "docker"))
    record("spec", check_spec(m), "compose-go accepts %s (%.1fs)" % (os.path.relpath(compose, ROOT),
                                                                    time.time() - t0))
    record("config", check_config(compose))

    if m["project"] is not None:
        services = services_of(m)
    elif yaml is None:
        record("parse", ["PyYAML is missing (Debian: apt-get install -y python3-yaml)"])
        services = {}
    else:
        services = (m["raw"] or {}).get("services") or {}

    consumers = consumer_services(services)
    airflow = airflow_services(services)
    record("consumer-env", check_env(consumers, compose_dir, "consumer", "consumer",
                                     find_bin("consumer", args.consumer_bin)))
    record("producer-env", check_env(airflow, compose_dir, "producer or consumer", "producer",
                                     find_bin("producer", args.producer_bin),
                                     also=[("consumer", find_bin("consumer", args.consumer_bin))]))
    record("pushgateway-env", check_pushgateway_env(airflow, find_bin("producer", args.producer_bin)))
    record("airflow-await", check_airflow_await(services))
    record("readiness", check_readiness(services))
    record("stop-grace", check_stop_grace(services))
    record("builder-stage", check_builder())
    if m["project"] is not None:
        record("heap", check_heap(m))
        record("memory", check_memory(m), memory_info(m))
        record("light-probes", check_light_probes(m))
        record("control-center", check_control_center(m))
        if yaml is None:
            record("airflow-secrets", ["PyYAML is missing (Debian: apt-get install -y python3-yaml)"])
        else:
            record("airflow-secrets", check_airflow_secrets(m))
        record("consumer-scale", check_consumer_scale(m))
    record("arch", check_arch(m))
    check_profile(compose, env_file)
    if os.path.exists(os.path.join(compose_dir, SECURE_COMPOSE)):
        check_secure(compose, env_file, args)
    if not args.no_self_test and m["project"] is not None and yaml is not None:
        t1 = time.time()
        problems = self_test(compose, env_file)
        record("self-test", problems, "%.1fs" % (time.time() - t1))

    passed = sum(1 for _, ok, _ in results if ok)
    failed = len(results) - passed
    print("compose: %d passed, %d failed (%.1fs)" % (passed, failed, time.time() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
