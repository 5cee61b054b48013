"""The Airflow UI as a user takes it, in headless Chromium against the bed's api-server, scheduler
and dag-processor: the trigger form works as shipped, the runs it starts reach Kafka and Cassandra,
and a run whose producer fails shows as failed with the reason in its task log.

Screenshots (and the pages' HTML) land in target/airflow-ui/."""
import bed


def test_the_trigger_form_as_it_opens_and_with_another_count_runs_the_producer_into_cassandra(ui, api, lane):
    ui.open_trigger_form()
    assert ui.field("count").get_attribute("value") == "100"
    assert ui.field("batch_size").get_attribute("value") == "500"
    assert ui.field("duration").get_attribute("value") == ""
    assert ui.field("topic").get_attribute("value") == ""
    ui.shot("01-trigger-form-defaults")
    ui.shot_dialog("01-trigger-form-defaults-dialog")
    assert ui.submit_enabled(), "the Trigger button is disabled with the form's defaults"
    first = ui.submit()
    assert api.wait_run(first) == "success", api.log(first, api.task(first)["try_number"])[-4000:]

    ui.open_trigger_form()
    ui.set_field("count", 250)
    ui.shot("02-trigger-form-count-250")
    assert ui.submit_enabled()
    second = ui.submit()
    assert api.wait_run(second) == "success", api.log(second, api.task(second)["try_number"])[-4000:]

    ui.open_run(second)
    ui.shows("Success")
    ui.shot("03-run-success")
    for run_id, published in ((first, 100), (second, 250)):
        ui.open_task_log(run_id)
        ui.search_log("summary:")
        ui.shows("published=%d" % published)
        assert bed.summary(api.log(run_id, 1), "published") == published
    ui.shot("04-task-log-summary")

    # the form's empty topic means the worker's KAFKA_TOPIC: the consumer finds both runs' users there
    assert bed.consume(lane.topic) == 100 + 250


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
    assert state == "failed"

    # the DAG's retry policy (retries=0, see dags/random_user_pipeline.py): one try, no up_for_retry
    retries = api.get("/api/v2/dags/%s/tasks/%s" % (bed.DAG_ID, bed.TASK_ID))["retries"]
    tries = api.tries(run_id)
    ti = api.task(run_id)
    assert retries == 0
    assert len(tries) == retries + 1 and ti["try_number"] == retries + 1, tries
    assert ti["state"] == "failed" and ti["max_tries"] == retries, ti
    log = api.log(run_id, ti["try_number"])
    assert "schema registry at %s" % registry in log, log[-4000:]
    assert "Command exited with return code" in log

    ui.open_run(run_id)
    ui.shows("Failed")
    ui.shot("05-run-failed")
    ui.open_task_log(run_id)
    ui.search_log("schema registry at")
    ui.shows("schema registry at %s" % registry)
    ui.shot("06-task-log-failed")
