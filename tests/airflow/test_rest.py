"""The REST API path for automation: POST /api/v2/dags/random_user_to_kafka/dagRuns with a conf,
poll the run to its end, read the task log, find the rows in Cassandra."""
import bed


def test_a_run_triggered_through_the_rest_api_with_a_conf_publishes_count_users_to_its_topic(api, lane):
    topic = bed.unique("airflow_rest")
    run_id = api.trigger({"count": 120, "batch_size": 50, "topic": topic}, run_id="rest_" + topic)

    assert run_id == "rest_" + topic
    state = api.wait_run(run_id)
    ti = api.task(run_id)
    log = api.log(run_id, ti["try_number"])
    assert state == "success", "run %s ended %s; task log:\n%s" % (run_id, state, log[-4000:])
    assert "--count 120 --batch-size 50 --topic %s" % topic in log, "the conf reached the command line:\n" + log
    assert bed.summary(log, "published") == 120
    assert bed.consume(topic) == 120, "rows in Cassandra from the conf's topic"
