"""Random User API -> Kafka -> Cassandra, on demand: a green run means the users are in Cassandra.

Trigger ``random_user_to_kafka`` from the Airflow UI ("Trigger" -> the form opens with working
defaults) or through the REST API with a conf such as ``{"count": 250, "topic": "users_created"}``.

Two tasks, ``produce_users >> await_cassandra``:

- ``produce_users`` runs the Rust ``producer`` binary, which fetches users from the Random User API
  and publishes them to Kafka as Avro registered in the Schema Registry. With ``--landed-file`` it
  writes where its records landed (topic, and per partition the offsets from the run's first record
  to one past its last) as one line of JSON, which the task prints last: that line is the task's
  XCom. The producer's ``summary: fetched=… published=…`` line is in the task log above it.
- ``await_cassandra`` runs ``consumer await-run`` with that JSON. The consumer service (not
  Airflow) writes the users to Cassandra; this task watches its consumer group (the form's
  ``consumer_group``, ``cassandra-writer`` in Compose) until the group has committed past every
  offset of the run, and ends with ``summary: N users written to Cassandra in … s``. It fails when
  any record of the run was dead-lettered (the log names how many and the first reason), or when the
  group committed nothing new of the run for ``stall_timeout`` (the log says why: no consumer
  running, or members that do not move).

Why the second task: publishing to Kafka is only half of the pipeline. Without it a run was green
as soon as Kafka had the users, also when no consumer was running or every record went to the
dead-letter topic. Now green means the users are in Cassandra, and red says which half failed.

Connection settings are not DAG parameters: both binaries read them from the environment of the
Airflow worker (KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL, RANDOMUSER_API_URL, KAFKA_TOPIC;
KAFKA_DLQ_TOPIC for the dead-letter topic the consumer writes to), which docker-compose.yml sets; the
form's optional `topic` overrides KAFKA_TOPIC for one run (and the landed JSON carries it to the
second task).

Retries: none (``retries=0``), for both tasks. The producer already retries what a retry can fix (API
requests, the registry at start-up, Kafka deliveries) and exits non-zero only once those are
exhausted; a task-level retry would run the whole fetch again and publish up to `count` more new
users on top of those the failed attempt had already delivered. ``await_cassandra`` only watches:
a retry would watch the same group again, and its failures (no consumer, dead letters) need a
person. A failed run stays failed, with the reason in its task log, for a person to read and
re-trigger.

Time limits: each task has an ``execution_timeout`` (PRODUCE_USERS_TIMEOUT, AWAIT_CASSANDRA_TIMEOUT
in the worker's environment, e.g. ``90m``; 60 minutes each by default), so a run that hangs fails
instead of holding ``max_active_runs=1`` for ever. At the limit Airflow sends the task SIGTERM: the
producer stops mid-page, flushes what it had handed Kafka and exits 143 (the task fails).
"""
from __future__ import annotations

import os
import re
import shlex
from datetime import timedelta

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param

PRODUCER_BIN = os.environ.get("PRODUCER_BIN", "/usr/local/bin/producer")
CONSUMER_BIN = os.environ.get("CONSUMER_BIN", "/usr/local/bin/consumer")


def time_limit(variable, default):
    """A task's execution_timeout from the worker's environment: whole seconds, minutes or hours
    (`900s`, `90m`, `2h`), as the binaries' own durations are written. Read when the DAG is parsed:
    Airflow needs the limit before any run, so it cannot be a form field."""
    value = os.environ.get(variable, "").strip() or default
    match = re.fullmatch(r"(\d+)\s*([smh])", value)
    if not match or int(match.group(1)) == 0:
        raise ValueError("%s=%r is not a time limit: write e.g. 900s, 90m or 2h" % (variable, value))
    unit = {"s": "seconds", "m": "minutes", "h": "hours"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


# Long enough for a large `count` or a long `duration`; see "Time limits" above.
PRODUCE_TIMEOUT = time_limit("PRODUCE_USERS_TIMEOUT", "60m")
AWAIT_TIMEOUT = time_limit("AWAIT_CASSANDRA_TIMEOUT", "60m")

# Only flags with a value are passed: an empty `duration` or `topic` leaves the flag out entirely
# (then KAFKA_TOPIC, or the producer's default, applies). The producer writes where its records
# landed to a temporary file, printed once it has exited 0: BashOperator pushes the last line of
# the output (stdout and stderr merged) to XCom, so that line must come after everything the
# producer logs. `set -e`: a failing producer fails the task with its exit code, and nothing is
# printed after its error.
PRODUCER_COMMAND = (
    "set -e; landed=$(mktemp); trap 'rm -f \"$landed\"' EXIT; "
    f"{shlex.quote(PRODUCER_BIN)}"
    "{% if params.count %} --count {{ params.count | int }}{% endif %}"
    "{% if params.duration and params.duration | trim %}"
    " --duration {{ params.duration | trim | shell_quote }}{% endif %}"
    " --batch-size {{ params.batch_size | int }}"
    "{% if params.topic and params.topic | trim %} --topic {{ params.topic | trim | shell_quote }}{% endif %}"
    ' --landed-file "$landed"; cat "$landed"'
)

# The landed JSON, the group and the stall timeout go in as environment variables (`env=` below),
# never through the shell: nothing of them is parsed as shell words.
AWAIT_COMMAND = f"exec {shlex.quote(CONSUMER_BIN)} await-run"

with DAG(
    dag_id="random_user_to_kafka",
    description="Fetch users from the Random User API, publish them to Kafka (Avro), wait until they are in Cassandra",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["random-user", "kafka", "cassandra"],
    # no task retries: see the module docstring
    default_args={"retries": 0},
    params={
        "count": Param(
            100,
            type=["null", "integer"],
            minimum=1,
            description="Number of users to fetch. Leave empty to run for `duration` only.",
        ),
        # Optional params are nullable with a None default: a plain "string" param with default ""
        # counts as a required field left empty, and the UI's Trigger button stays disabled.
        "duration": Param(
            None,
            type=["null", "string"],
            description=(
                "Keep fetching for this long, e.g. 60s or 5m. Empty: not used. "
                "With a count too, the producer stops at whichever comes first."
            ),
        ),
        "batch_size": Param(
            500,
            type="integer",
            minimum=1,
            maximum=5000,
            description="Users per Random User API request (the API allows at most 5000).",
        ),
        "topic": Param(
            None,
            type=["null", "string"],
            description=(
                "Kafka topic to publish to. Empty: the worker's KAFKA_TOPIC (users_created in Compose). "
                "Topic auto-creation is off: the producer creates a missing topic itself."
            ),
        ),
        "consumer_group": Param(
            "cassandra-writer",
            type="string",
            minLength=1,
            description=(
                "The consumer group that writes the topic to Cassandra: the second task waits until it "
                "has committed every record of the run. cassandra-writer is the Compose consumer's."
            ),
        ),
        "stall_timeout": Param(
            "120s",
            type="string",
            minLength=1,
            description=(
                "Fail the second task when the group has committed nothing new of this run for this "
                "long (e.g. 120s, 5m): no consumer running, or one that is stuck."
            ),
        ),
    },
    user_defined_filters={"shell_quote": shlex.quote},
) as dag:
    produce = BashOperator(
        task_id="produce_users",
        bash_command=PRODUCER_COMMAND,
        execution_timeout=PRODUCE_TIMEOUT,
        # No `env=`: the task inherits the worker's environment, where the producer finds its
        # connection settings.
    )
    await_cassandra = BashOperator(
        task_id="await_cassandra",
        bash_command=AWAIT_COMMAND,
        execution_timeout=AWAIT_TIMEOUT,
        # The worker's environment (KAFKA_BOOTSTRAP_SERVERS, KAFKA_DLQ_TOPIC, ...) plus these.
        append_env=True,
        env={
            # produce_users' last output line: where this run's records landed (its topic too).
            "CONSUMER_AWAIT_LANDED": "{{ ti.xcom_pull(task_ids='produce_users') }}",
            "KAFKA_GROUP_ID": "{{ params.consumer_group | trim }}",
            "CONSUMER_AWAIT_STALL_TIMEOUT": "{{ params.stall_timeout | trim }}",
            "CONSUMER_PROGRESS_INTERVAL": "5s",
        },
    )
    produce >> await_cassandra
