"""The REST API path for automation: POST /api/v2/dags/random_user_to_kafka/dagRuns with a conf,
poll the run to its end, read both tasks' logs and the landed offsets; a green run's users are in
Cassandra."""
import json

import bed


def test_a_run_triggered_through_the_rest_api_with_a_conf_is_green_with_count_users_in_cassandra(api, lane):
    topic = bed.unique("airflow_rest")
    group = "writer_" + topic
    with bed.Consumer(topic, group, lane.dlq) as consumer:
        run_id = api.trigger({"count": 120, "batch_size": 50, "topic": topic, "consumer_group": group},
                             run_id="rest_" + topic)
        assert run_id == "rest_" + topic
        state = api.wait_run(run_id)
        report = api.report(run_id) + "\n" + consumer.report()
    assert state == "success", report

    log = api.task_log(run_id, bed.PRODUCE)
    assert "--count 120 --batch-size 50 --topic %s" % topic in log, "the conf reached the command line:\n" + log
    assert bed.summary(log, "published") == 120
    # produce_users' XCom: where the run's records landed, as `producer --landed-file` wrote it
    landed = json.loads(api.xcom(run_id, bed.PRODUCE))
    assert landed["topic"] == topic and landed["published"] == 120, landed
    assert sum(p["end"] - p["first"] for p in landed["partitions"]) == 120, "only this run wrote to its topic: %r" % landed

    log = api.task_log(run_id, bed.AWAIT)
    assert "summary: 120 users written to Cassandra" in log, log[-3000:]
    assert "(group %s" % group in log, log[-3000:]
    assert bed.rows(consumer.keyspace) == 120, "rows in Cassandra once the run is green"


def test_every_task_has_a_time_limit(api):
    """A hung task fails at its execution_timeout instead of holding max_active_runs=1 for ever
    (dags/random_user_pipeline.py, "Time limits")."""
    tasks = api.get("/api/v2/dags/%s/tasks" % bed.DAG_ID)["tasks"]
    assert {t["task_id"] for t in tasks} == {bed.PRODUCE, bed.AWAIT}, tasks
    for task in tasks:
        limit = task.get("execution_timeout") or {}
        seconds = limit.get("days", 0) * 86400 + limit.get("seconds", 0)
        assert seconds >= 60, (task["task_id"], limit)
