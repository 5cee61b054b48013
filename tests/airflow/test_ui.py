"""The Airflow UI as a user takes it, in headless Chromium against the bed's api-server, scheduler
and dag-processor: the trigger form works as shipped; a run is green only once its users are in
Cassandra (the second task, `await_cassandra`, watches the consumer group that writes them); a run
is red, with the reason in the failed task's log, when its producer fails, when no consumer writes
its users, or when a record of the run went to the dead-letter topic.

The consumers are the real consumer binary, started by the tests in the background (bed.Consumer),
each in a group of its own that the run names in its `consumer_group` field: as Compose's consumer
service, but one per test, so that tests never share a group.

Screenshots (and the pages' HTML) land in target/airflow-ui/."""
import json
import re

import bed


def written(log):
    """N from await-run's last line, `summary: N users written to Cassandra in … s (group …)`."""
    m = re.findall(r"summary: (\d+) users written to Cassandra", log)
    assert m, "no `summary: N users written to Cassandra` in the await_cassandra log:\n" + log[-3000:]
    return int(m[-1])


def test_the_trigger_form_as_it_opens_and_with_another_count_runs_green_once_the_users_are_in_cassandra(
        ui, api, lane):
    group = "writer_" + lane.topic
    with bed.Consumer(lane.topic, group, lane.dlq) as consumer:
        ui.open_trigger_form()
        assert ui.field("count").get_attribute("value") == "100"
        assert ui.field("batch_size").get_attribute("value") == "500"
        assert ui.field("duration").get_attribute("value") == ""
        assert ui.field("topic").get_attribute("value") == ""
        assert ui.field("consumer_group").get_attribute("value") == "cassandra-writer"
        assert ui.field("stall_timeout").get_attribute("value") == "120s"
        ui.shot("01-trigger-form-defaults")
        ui.shot_dialog("01-trigger-form-defaults-dialog")
        assert ui.submit_enabled(), "the Trigger button is disabled with the form's defaults"
        # the defaults but the group: this test's consumer instead of Compose's cassandra-writer
        ui.set_field("consumer_group", group)
        first = ui.submit()
        assert api.wait_run(first) == "success", api.report(first) + "\n" + consumer.report()

        ui.open_trigger_form()
        ui.set_field("count", 250)
        ui.set_field("consumer_group", group)
        ui.shot("02-trigger-form-count-250")
        assert ui.submit_enabled()
        second = ui.submit()
        assert api.wait_run(second) == "success", api.report(second) + "\n" + consumer.report()

    # Green means written: the rows are in Cassandra as the runs end, without consuming anything more.
    assert bed.rows(consumer.keyspace) == 100 + 250, consumer.report()
    for run_id, published in ((first, 100), (second, 250)):
        assert bed.summary(api.log(run_id, 1), "published") == published
        ti = api.task(run_id, bed.AWAIT)
        log = api.task_log(run_id, bed.AWAIT)
        assert ti["state"] == "success", api.report(run_id)
        assert written(log) == published, log[-3000:]
        assert "(group %s" % group in log, log[-3000:]

    ui.open_run(second)
    ui.shows("Success")
    ui.open_graph(second)
    ui.shows(bed.PRODUCE)
    ui.shows(bed.AWAIT)
    ui.shot("03-run-success-graph")
    for run_id, published in ((first, 100), (second, 250)):
        ui.open_task_log(run_id)
        ui.search_log("summary:")
        ui.shows("published=%d" % published)
    ui.shot_log("04-task-log-summary")
    for run_id, published in ((first, 100), (second, 250)):
        ui.open_task_log(run_id, bed.AWAIT)
        ui.search_log("users written")
        ui.shows("%d users written to Cassandra" % published)
    ui.shot_log("05-await-log-users-written")


def test_with_the_registry_down_a_triggered_run_fails_with_the_cause_in_its_log_and_no_retry(ui, api, lane):
    registry = bed.env("SCHEMA_REGISTRY_URL")
    ui.open_trigger_form()
    # other tests share this registry: stopped only from the click until the run has ended
    bed.stack("stop", "registry")
    try:
        run_id = ui.submit()
        state = api.wait_run(run_id, timeout=180)
    finally:
        bed.stack("start", "registry")
    assert state == "failed", api.report(run_id)

    # the DAG's retry policy (retries=0, see dags/random_user_pipeline.py): one try, no up_for_retry
    for task_id in (bed.PRODUCE, bed.AWAIT):
        assert api.get("/api/v2/dags/%s/tasks/%s" % (bed.DAG_ID, task_id))["retries"] == 0, task_id
    tries = api.tries(run_id)
    ti = api.task(run_id)
    assert len(tries) == 1 and ti["try_number"] == 1, tries
    assert ti["state"] == "failed" and ti["max_tries"] == 0, ti
    log = api.log(run_id, ti["try_number"])
    assert "schema registry at %s" % registry in log, log[-4000:]
    assert "Command exited with return code" in log
    # nothing was published: the second task never ran
    assert api.task(run_id, bed.AWAIT)["state"] == "upstream_failed", api.report(run_id)

    ui.open_run(run_id)
    ui.shows("Failed")
    ui.shot("06-run-failed")
    ui.open_task_log(run_id)
    ui.search_log("schema registry at")
    ui.shows("schema registry at %s" % registry)
    ui.shot_log("07-task-log-failed")


def test_with_no_consumer_in_its_group_a_run_fails_in_await_cassandra_saying_so(ui, api, lane):
    # a topic of its own: its 100 users stay unconsumed and must not reach another test's consumer
    topic = bed.unique("airflow_stall")
    group = "nobody_" + topic
    ui.open_trigger_form()
    ui.set_field("topic", topic)
    ui.set_field("consumer_group", group)
    ui.set_field("stall_timeout", "20s")
    ui.shot("08-trigger-form-no-consumer")
    run_id = ui.submit()
    assert api.wait_run(run_id) == "failed", api.report(run_id)

    assert api.task(run_id, bed.PRODUCE)["state"] == "success", api.report(run_id)
    assert bed.summary(api.log(run_id, 1), "published") == 100
    ti = api.task(run_id, bed.AWAIT)
    assert ti["state"] == "failed" and ti["try_number"] == 1 and len(api.tries(run_id, bed.AWAIT)) == 1, ti
    log = api.task_log(run_id, bed.AWAIT)
    assert "consumer group '%s' is not consuming" % group in log, log[-4000:]
    assert "no members" in log, log[-4000:]
    assert "Command exited with return code 1" in log, log[-4000:]

    ui.open_run(run_id)
    ui.shows("Failed")
    ui.open_graph(run_id)
    ui.shows(bed.AWAIT)
    ui.shot("09-run-failed-no-consumer-graph")
    ui.open_task_log(run_id, bed.AWAIT)
    ui.search_log("not consuming")
    ui.shows("is not consuming")
    ui.shot_log("10-await-log-no-consumer")


POISON = "not Avro: written by tests/airflow between two pages of a run"


def test_a_record_dead_lettered_inside_the_runs_offsets_fails_await_cassandra_with_count_and_reason(
        ui, api, lane):
    """The dead letter must lie inside the run's offsets: written to the run's topic (one partition)
    after the run's first page is in Kafka and before its second page is. The fake API holds the
    run's second request until the poison record is acknowledged; every step waits for a state it
    can see (the held request, the topic's end offset), none for a time."""
    kafka = bed.Kafka()
    topic = bed.unique("airflow_poison")
    group = "writer_" + topic
    page = 37   # no other test asks for 37 users: the hold below catches this run's requests only
    kafka.create_topic(topic, partitions=1)   # one partition: its offsets order everything on the topic
    lane.fake_api.hold(page, serve=1)
    try:
        with bed.Consumer(topic, group, lane.dlq) as consumer:
            run_id = api.trigger({"count": 2 * page, "batch_size": page, "topic": topic, "consumer_group": group},
                                 run_id="poison_" + topic)
            try:
                bed.poll("the run's second API request, held by the fake API", lambda: lane.fake_api.held(page),
                         180, 0.5)
                bed.poll("the run's first %d users on %s" % (page, topic),
                         lambda: kafka.end_offsets(topic).get(0) == page, 20, 0.5)
                kafka.produce_raw(topic, POISON)
                assert kafka.end_offsets(topic) == {0: page + 1}
            finally:
                lane.fake_api.release(page)
            state = api.wait_run(run_id)
            report = api.report(run_id) + "\n" + consumer.report()
    finally:
        lane.fake_api.release(page)
    assert state == "failed", report

    # the premise: the run's records are offsets 0..74 of partition 0, the poison record (37) among them
    assert api.task(run_id, bed.PRODUCE)["state"] == "success", report
    landed = json.loads(api.xcom(run_id, bed.PRODUCE))
    assert landed["topic"] == topic and landed["published"] == 2 * page, landed
    assert landed["partitions"] == [{"partition": 0, "first": 0, "end": 2 * page + 1}], landed

    ti = api.task(run_id, bed.AWAIT)
    log = api.task_log(run_id, bed.AWAIT)
    assert ti["state"] == "failed", report
    assert re.search(r"1 of \d+ records of this run were dead-lettered to %s" % re.escape(lane.dlq), log), log[-4000:]
    assert "not Confluent wire format" in log, "the dead letter's reason is in the log:\n" + log[-4000:]

    ui.open_task_log(run_id, bed.AWAIT)
    ui.search_log("dead-lettered")
    ui.shows("records of this run were dead-lettered to %s" % lane.dlq)
    ui.shot_log("11-await-log-dead-lettered")
