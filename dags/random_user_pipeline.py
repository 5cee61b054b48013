"""Random User API -> Kafka, on demand.

Trigger ``random_user_to_kafka`` from the Airflow UI ("Trigger" -> fill the form). Its one task runs
the Rust ``producer`` binary, which fetches users from the Random User API and publishes them to
Kafka as Avro registered in the Schema Registry. The consumer service writes them to Cassandra.

Connection settings are not DAG parameters: the producer reads them from the environment of the
Airflow worker (KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL, RANDOMUSER_API_URL, KAFKA_TOPIC), which
docker-compose.yml sets. The task fails (no retry) when the producer exits non-zero; the producer's
`summary: fetched=… published=…` line is in the task log.
"""

from __future__ import annotations

import os
import shlex

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param

PRODUCER_BIN = os.environ.get("PRODUCER_BIN", "/usr/local/bin/producer")

# Only flags with a value are passed: an empty `duration` leaves --duration out entirely.
PRODUCER_COMMAND = (
    f"exec {shlex.quote(PRODUCER_BIN)}"
    "{% if params.count %} --count {{ params.count | int }}{% endif %}"
    "{% if params.duration %} --duration {{ params.duration | trim | shell_quote }}{% endif %}"
    " --batch-size {{ params.batch_size | int }}"
)

with DAG(
    dag_id="random_user_to_kafka",
    description="Fetch users from the Random User API and publish them to Kafka (Avro)",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["random-user", "kafka"],
    default_args={"retries": 0},
    params={
        "count": Param(
            100,
            type=["null", "integer"],
            minimum=1,
            description="Number of users to fetch. Leave empty to run for `duration` only.",
        ),
        "duration": Param(
            "",
            type="string",
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
    },
    user_defined_filters={"shell_quote": shlex.quote},
) as dag:
    BashOperator(
        task_id="produce_users",
        bash_command=PRODUCER_COMMAND,
        # No `env=`: the task inherits the worker's environment, where the producer finds its
        # connection settings.
    )
