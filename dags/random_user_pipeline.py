"""Random User API -> Kafka, on demand.

Trigger ``random_user_to_kafka`` from the Airflow UI ("Trigger" -> the form opens with working
defaults) or through the REST API with a conf such as ``{"count": 250, "topic": "users_created"}``.
Its one task runs the Rust ``producer`` binary, which fetches users from the Random User API and
publishes them to Kafka as Avro registered in the Schema Registry. The consumer service writes them
to Cassandra.

Connection settings are not DAG parameters: the producer reads them from the environment of the
Airflow worker (KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL, RANDOMUSER_API_URL, KAFKA_TOPIC), which
docker-compose.yml sets; the form's optional `topic` overrides KAFKA_TOPIC for one run. The
producer's `summary: fetched=… published=…` line is in the task log.

Retries: none (``retries=0``). The producer already retries what a retry can fix (API requests,
the registry at start-up, Kafka deliveries) and exits non-zero only once those are exhausted; a
task-level retry would run the whole fetch again and publish up to `count` more new users on top of
those the failed attempt had already delivered. A failed run stays failed, with the reason in its
task log, for a person to read and re-trigger.
"""

from __future__ import annotations

import os
import shlex

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param

PRODUCER_BIN = os.environ.get("PRODUCER_BIN", "/usr/local/bin/producer")

# Only flags with a value are passed: an empty `duration` or `topic` leaves the flag out entirely
# (then KAFKA_TOPIC, or the producer's default, applies).
PRODUCER_COMMAND = (
    f"exec {shlex.quote(PRODUCER_BIN)}"
    "{% if params.count %} --count {{ params.count | int }}{% endif %}"
    "{% if params.duration and params.duration | trim %}"
    " --duration {{ params.duration | trim | shell_quote }}{% endif %}"
    " --batch-size {{ params.batch_size | int }}"
    "{% if params.topic and params.topic | trim %} --topic {{ params.topic | trim | shell_quote }}{% endif %}"
)

with DAG(
    dag_id="random_user_to_kafka",
    description="Fetch users from the Random User API and publish them to Kafka (Avro)",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["random-user", "kafka"],
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
    },
    user_defined_filters={"shell_quote": shlex.quote},
) as dag:
    BashOperator(
        task_id="produce_users",
        bash_command=PRODUCER_COMMAND,
        # No `env=`: the task inherits the worker's environment, where the producer finds its
        # connection settings.
    )
