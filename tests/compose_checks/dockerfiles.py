"""builder-stage and arch: the Dockerfiles of docker/ share their builder stage and name no CPU
architecture, and no service pins a platform."""
import os
import re
import sys

from .model import ROOT, services_of

sys.path.insert(0, os.path.join(ROOT, "tests", "images.d"))
import arch_literals  # noqa: E402  (shared with tests/images)

AIRFLOW_DOCKERFILE = "docker/airflow.Dockerfile"
RUST_DOCKERFILE = "docker/rust.Dockerfile"
BUILDER_START = "# ---- builder"
BUILDER_END = "# ---- end of builder"


def builder_stage(path):
    with open(path) as fh:
        lines = fh.read().splitlines()
    try:
        start = next(i for i, l in enumerate(lines) if l.startswith(BUILDER_START))
        end = next(i for i, l in enumerate(lines) if l.startswith(BUILDER_END))
    except StopIteration:
        return None
    return lines[start:end + 1]


def check_builder():
    stages = {}
    for rel in (RUST_DOCKERFILE, AIRFLOW_DOCKERFILE):
        stage = builder_stage(os.path.join(ROOT, rel))
        if stage is None:
            return ["%s: no '%s ... %s' block" % (rel, BUILDER_START, BUILDER_END)]
        stages[rel] = stage
    a, b = stages[RUST_DOCKERFILE], stages[AIRFLOW_DOCKERFILE]
    # cargo loads the whole workspace even for `-p producer -p consumer`: a member whose manifest
    # the builder does not copy fails the image build ("failed to load manifest").
    members = re.search(r"^members\s*=\s*\[([^\]]*)\]", open(os.path.join(ROOT, "Cargo.toml")).read(), re.M)
    copied = {l.split()[1] for l in a if l.startswith("COPY ")}
    missing = [m for m in re.findall(r'"([^"]+)"', members.group(1) if members else "")
               if m + "/Cargo.toml" not in copied]
    if missing:
        return ["%s: the builder stage does not copy the manifest of workspace member(s) %s (COPY "
                "<member>/Cargo.toml, and a stub src/lib.rs in the RUN after it)"
                % (RUST_DOCKERFILE, ", ".join(missing))]
    if a != b:
        for i, (x, y) in enumerate(zip(a + [""] * len(b), b + [""] * len(a))):
            if x != y:
                return ["builder stages differ at line %d of the block:\n       %s: %s\n       %s: %s"
                        % (i + 1, RUST_DOCKERFILE, x, AIRFLOW_DOCKERFILE, y)]
    return []


def check_arch(m):
    problems = ["%s:%d: architecture-specific literal: %s" % (p, n, l.strip()[:120])
                for p, n, l in arch_literals.scan(m["docker_dir"])]
    for name, svc in sorted(services_of(m).items()):
        if svc.get("platform"):
            problems.append("service `%s` pins platform %s: laptops of the other architecture run it "
                            "emulated, or not at all" % (name, svc["platform"]))
    return problems
