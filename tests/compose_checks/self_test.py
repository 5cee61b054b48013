"""self-test: each check fails on a deliberately broken copy of the files, and passes on an
unbroken copy (so that a green run means something)."""
import copy
import os
import re
import shutil
import tempfile

from .airflow import check_airflow_await, check_airflow_secrets
from .control_center import BROKER_IMAGES, CONTROL_CENTER_IMAGE, check_control_center
from .dockerfiles import check_arch
from .loaders import check_spec
from .model import (MONITORING, ROOT, airflow_services, consumer_services, image_name, load_model,
                    load_profile_model, one_shots, services_of)
from .monitoring import check_monitoring
from .resources import GIB, MONITORING_MEMORY_BUDGET, check_heap, check_light_probes, check_memory
from .services import check_consumer_scale, check_readiness
from .stopping import check_stop_grace, runs_tasks


def self_test(compose, env_file):
    """Each check must fail on a deliberately broken copy, and pass on the unbroken copy."""
    problems = []
    work = tempfile.mkdtemp(prefix="compose-check-")
    try:
        text = open(compose).read()
        env_text = open(env_file).read() if os.path.exists(env_file) else ""
        shutil.copytree(os.path.join(ROOT, "docker"), os.path.join(work, "docker"))

        def model(compose_text=text, env=env_text):
            d = tempfile.mkdtemp(dir=work)
            with open(os.path.join(d, "docker-compose.yml"), "w") as f:
                f.write(compose_text)
            with open(os.path.join(d, ".env"), "w") as f:
                f.write(env)
            return load_model(os.path.join(d, "docker-compose.yml"), os.path.join(d, ".env"),
                              os.path.join(work, "docker"))

        base = model()
        if base["project"] is None:
            return ["the unbroken copy does not load: %s" % base["spec_error"]]
        services = services_of(base)
        once = one_shots(services)
        broker = next(n for n, s in sorted(services.items()) if image_name(s) in BROKER_IMAGES and n not in once)
        center = next(n for n, s in services.items() if image_name(s) == CONTROL_CENTER_IMAGE)
        cassandra = next(n for n, s in services.items() if image_name(s) == "cassandra")
        consumer = next(iter(consumer_services(services)))
        airflow = sorted(airflow_services(services))[0]
        scheduler = next(n for n, s in sorted(airflow_services(services).items()) if runs_tasks(s))
        checks = {"spec": check_spec, "heap": check_heap, "memory": check_memory,
                  "light-probes": check_light_probes, "control-center": check_control_center,
                  "airflow-secrets": check_airflow_secrets, "consumer-scale": check_consumer_scale,
                  "arch": check_arch, "readiness": lambda m: check_readiness(services_of(m)),
                  "airflow-await": lambda m: check_airflow_await(services_of(m)),
                  "stop-grace": lambda m: check_stop_grace(services_of(m)),
                  "airflow-await-dag": lambda m: check_airflow_await(services_of(m), dag_group="writers")}
        for name, fn in checks.items():
            if name != "airflow-await-dag" and fn(base):
                problems.append("`%s` fails on the unbroken copy" % name)

        def svc(m, n):
            return m["project"]["services"][n]

        def env(m, n):
            return svc(m, n)["environment"]

        def raw_env(m, n):
            return m["raw"]["services"][n]["environment"]

        def arch_dir(m):
            d = tempfile.mkdtemp(dir=work)
            shutil.copytree(m["docker_dir"], os.path.join(d, "docker"))
            with open(os.path.join(d, "docker", "rust.Dockerfile"), "a") as f:
                f.write("RUN cp -L /lib64/ld-linux-x86-64.so.2 /rootfs/lib64/\n")
            m["docker_dir"] = os.path.join(d, "docker")

        tests = [
            ("heap", "broker without KAFKA_HEAP_OPTS", lambda m: env(m, broker).pop("KAFKA_HEAP_OPTS")),
            ("heap", "Control Center without CONTROL_CENTER_HEAP_OPTS", lambda m: env(m, center).pop("CONTROL_CENTER_HEAP_OPTS")),
            ("heap", "Cassandra without HEAP_NEWSIZE", lambda m: env(m, cassandra).pop("HEAP_NEWSIZE")),
            ("heap", "broker heap as large as its limit", lambda m: env(m, broker).update(KAFKA_HEAP_OPTS="-Xms1g -Xmx1g")),
            ("memory", "consumer without mem_limit", lambda m: svc(m, consumer).pop("mem_limit")),
            ("memory", "Control Center limit 3 GiB (over budget)", lambda m: svc(m, center).update(mem_limit=3 * GIB)),
            ("light-probes", "broker probed with kafka-topics",
             lambda m: svc(m, broker)["healthcheck"].update(test=["CMD", "kafka-topics", "--bootstrap-server", "localhost:9092", "--list"])),
            ("light-probes", "Cassandra probed with nodetool",
             lambda m: svc(m, cassandra)["healthcheck"].update(test=["CMD-SHELL", "nodetool status | grep -q UN"])),
            ("control-center", "broker on cp-kafka", lambda m: svc(m, broker).update(image="confluentinc/cp-kafka:7.9.1")),
            ("control-center", "no metrics reporter", lambda m: env(m, broker).pop("KAFKA_METRIC_REPORTERS")),
            ("control-center", "license topic with 3 replicas",
             lambda m: env(m, broker).update(KAFKA_CONFLUENT_LICENSE_TOPIC_REPLICATION_FACTOR="3")),
            ("airflow-secrets", "JWT secret as a literal in the Compose file",
             lambda m: raw_env(m, airflow).update(AIRFLOW__API_AUTH__JWT_SECRET="x" * 80)),
            ("airflow-secrets", "no issuer on one service", lambda m: raw_env(m, airflow).pop("AIRFLOW__API_AUTH__JWT_ISSUER")),
            ("airflow-secrets", "secret_key differs on one service", lambda m: env(m, airflow).update(AIRFLOW__API__SECRET_KEY="other")),
            ("airflow-secrets", "JWT secret of 40 bytes in .env", lambda m: m["env"].update(AIRFLOW_JWT_SECRET="s" * 40)),
            ("consumer-scale", "consumer with container_name", lambda m: svc(m, consumer).update(container_name="consumer")),
            ("consumer-scale", "consumer on fixed host port 9400",
             lambda m: svc(m, consumer).update(ports=[{"target": 9400, "published": "9400", "host_ip": "127.0.0.1"}])),
            ("consumer-scale", "consumer metrics port not exposed", lambda m: svc(m, consumer).pop("expose", None)),
            ("arch", "x86-64 loader path in a Dockerfile", arch_dir),
            ("arch", "platform pin", lambda m: svc(m, consumer).update(platform="linux/amd64")),
            ("readiness", "Cassandra without healthcheck", lambda m: svc(m, cassandra).pop("healthcheck")),
            ("airflow-await", "Airflow's dead-letter topic not the consumer's",
             lambda m: env(m, airflow).update(KAFKA_DLQ_TOPIC="other.dlq")),
            ("airflow-await", "consumer in another group than the DAG's default",
             lambda m: env(m, consumer).update(KAFKA_GROUP_ID="writers")),
            ("airflow-await-dag", "DAG's consumer_group default not the consumer's group", lambda m: None),
            ("stop-grace", "consumer without stop_grace_period", lambda m: svc(m, consumer).pop("stop_grace_period", None)),
            ("stop-grace", "consumer stopped within its drain", lambda m: svc(m, consumer).update(stop_grace_period="30s")),
            ("stop-grace", "producer's delivery timeout longer than the scheduler's grace",
             lambda m: env(m, scheduler).update(KAFKA_DELIVERY_TIMEOUT="10m")),
        ]
        for check, what, mutate in tests:
            m = copy.deepcopy(base)
            mutate(m)
            if not checks[check](m):
                problems.append("`%s` passes on a broken copy: %s" % (check, what))
        # The spec check on broken files (compose-go itself must reject them).
        spec_cases = [
            ("unknown key mem_limitt", re.sub(r"(?m)^(    mem_limit):", r"\1t:", text, count=1), env_text),
            ("bad depends_on condition", text.replace("condition: service_healthy", "condition: service_happy", 1), env_text),
            ("required variable missing from .env",
             text, re.sub(r"(?m)^AIRFLOW_JWT_ISSUER=.*\n", "", env_text)),
        ]
        for what, broken, broken_env in spec_cases:
            if broken == text and broken_env == env_text:
                problems.append("self-test could not break the copy for: %s (update the self-test)" % what)
                continue
            if not check_spec(model(broken, broken_env)):
                problems.append("`spec` passes on a broken copy: %s" % what)

        # The monitoring profile's checks, on the project that the profile makes. Its model reads
        # bind-mounted files (Prometheus' and Grafana's configuration) beside the Compose file.
        def profile_model(compose_text=text):
            d = tempfile.mkdtemp(dir=work)
            os.symlink(os.path.join(work, "docker"), os.path.join(d, "docker"))
            with open(os.path.join(d, "docker-compose.yml"), "w") as f:
                f.write(compose_text)
            with open(os.path.join(d, ".env"), "w") as f:
                f.write(env_text)
            return load_profile_model(os.path.join(d, "docker-compose.yml"), os.path.join(d, ".env"),
                                      os.path.join(work, "docker"))

        mon = profile_model()
        mon_tests = []
        if mon["project"] is None:
            problems.append("the unbroken copy does not load with profile %s: %s" % (MONITORING, mon["spec_error"]))
        else:
            role = {image_name(s): n for n, s in services_of(mon).items()}
            prom, push, graf = role["prom/prometheus"], role["prom/pushgateway"], role["grafana/grafana-oss"]
            mon_checks = {"monitoring": check_monitoring,
                          "monitoring-memory": lambda m: check_memory(m, MONITORING_MEMORY_BUDGET),
                          "monitoring-readiness": lambda m: check_readiness(services_of(m))}
            for name, fn in mon_checks.items():
                if fn(mon):
                    problems.append("`%s` fails on the unbroken copy" % name)

            def raw_svc(m, n):
                return m["raw"]["services"][n]

            def dashboards_elsewhere(m):
                vols = raw_svc(m, graf)["volumes"]
                raw_svc(m, graf)["volumes"] = [v if "provisioning" in v else re.sub(r":/[^:]+", ":/srv/elsewhere", v, count=1)
                                               for v in vols]

            mon_tests = [
                ("monitoring", "Prometheus published on all interfaces",
                 lambda m: svc(m, prom)["ports"][0].update(host_ip="0.0.0.0")),
                ("monitoring", "Airflow pushing to the host's Pushgateway",
                 lambda m: env(m, airflow).update(PRODUCER_PUSHGATEWAY_URL="http://localhost:9091")),
                ("monitoring", "consumer metrics on a port Prometheus does not scrape",
                 lambda m: env(m, consumer).update(CONSUMER_HTTP_ADDR="0.0.0.0:9500")),
                ("monitoring", "a mount of a directory that does not exist",
                 lambda m: raw_svc(m, graf)["volumes"].append("./docker/monitoring/grafana/nowhere:/etc/nowhere:ro")),
                ("monitoring", "Grafana's dashboards mounted where its provider does not read", dashboards_elsewhere),
                ("monitoring", "the Pushgateway outside the profile", lambda m: raw_svc(m, push).pop("profiles")),
                ("monitoring-memory", "Grafana limit 1 GiB (over the profile's budget)",
                 lambda m: svc(m, graf).update(mem_limit=GIB)),
                ("monitoring-readiness", "Pushgateway without healthcheck", lambda m: svc(m, push).pop("healthcheck")),
            ]
            for check, what, mutate in mon_tests:
                m = copy.deepcopy(mon)
                mutate(m)
                if not mon_checks[check](m):
                    problems.append("`%s` passes on a broken copy: %s" % (check, what))
            spelled = re.sub(r"(?m)^(\s+)profiles: \[%s\]$" % MONITORING, r"\1profiles:\n\1  - %s" % MONITORING,
                             text, count=1)
            mon_tests.append(("monitoring-spec", "a profile written as a block list", None))
            if spelled == text:
                problems.append("self-test could not break the copy for: a profile written as a block list")
            elif not check_spec(profile_model(spelled)):
                problems.append("`monitoring-spec` passes on a broken copy: a profile written as a block list")
        print("     %d broken copies, each caught" % (len(tests) + len(spec_cases) + len(mon_tests))
              if not problems else "     self-test problems: %d" % len(problems))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return problems
