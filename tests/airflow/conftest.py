"""Fixtures of the Airflow tests: the bed's Airflow with its tasks pointed at a local Random User API
and a topic of this session, the REST API, and a headless Chromium logged in to the UI."""
import os
import urllib.parse

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

import bed


class Lane:
    """What this session's runs use: the fake API, the worker's KAFKA_TOPIC and KAFKA_DLQ_TOPIC (the
    dead-letter topic `consumer await-run` reads, so the one the tests' consumers must write to)."""

    def __init__(self, fake_api, topic, dlq):
        self.fake_api, self.topic, self.dlq = fake_api, topic, dlq


@pytest.fixture(scope="session")
def api():
    return bed.AirflowApi(bed.env("AIRFLOW_API_URL"), bed.env("AIRFLOW_USERNAME"), bed.env("AIRFLOW_PASSWORD"))


@pytest.fixture(scope="session")
def lane(api):
    """The tasks run in the scheduler's LocalExecutor workers and see its environment: restart the
    scheduler with RANDOMUSER_API_URL (a local API: randomuser.me is unreachable here), KAFKA_TOPIC
    (a topic of this session, the one the form's empty `topic` means), KAFKA_DLQ_TOPIC (this
    session's dead-letter topic) and CONSUMER_BIN (the consumer this checkout built, for
    `await_cassandra`; the Compose image has it at /usr/local/bin/consumer)."""
    fake = bed.FakeApi(os.path.join(bed.ARTIFACTS, "fake_api.log"))
    topic = bed.unique("airflow_ui")
    dlq = topic + ".dlq"
    bed.stack("restart", "airflow-scheduler", extra_env={
        "RANDOMUSER_API_URL": fake.url, "KAFKA_TOPIC": topic, "KAFKA_DLQ_TOPIC": dlq,
        "CONSUMER_BIN": bed.consumer_bin()})
    # the dag-processor has parsed this checkout's DAG (`stall_timeout` is the newest param)
    bed.poll("DAG %s parsed with its `stall_timeout` param" % bed.DAG_ID, lambda: "stall_timeout" in api.dag_params(),
             120, 2)
    yield Lane(fake, topic, dlq)
    fake.stop()


class Ui:
    """The Airflow 3 UI as a user clicks it. Selectors come from the UI's own markup (data-testid,
    input names) as seen in page dumps of Airflow 3.3.2."""

    def __init__(self, driver, url):
        self.d, self.url = driver, url.rstrip("/")
        self.wait = WebDriverWait(driver, 60)
        os.makedirs(bed.ARTIFACTS, exist_ok=True)

    def shot(self, name):
        """A screenshot and the page's HTML under target/airflow-ui/."""
        path = os.path.join(bed.ARTIFACTS, name + ".png")
        self.d.save_screenshot(path)
        with open(os.path.join(bed.ARTIFACTS, name + ".html"), "w") as f:
            f.write(self.d.page_source)
        return path

    def shot_dialog(self, name):
        """A screenshot of the open dialog only (docs/airflow-trigger-form.png is one)."""
        path = os.path.join(bed.ARTIFACTS, name + ".png")
        dialog = "[role=dialog][data-scope=dialog][data-state=open]"
        # a window tall enough for the whole form (it scrolls in a 1000 px one), then back
        size = self.d.get_window_size()
        height = self.d.execute_script("return document.querySelector(arguments[0]).scrollHeight", dialog)
        self.d.set_window_size(size["width"], max(size["height"], height + 200))
        try:
            self.d.find_element(By.CSS_SELECTOR, dialog).screenshot(path)
        finally:
            self.d.set_window_size(size["width"], size["height"])
        return path

    def login(self, username, password):
        self.d.get(self.url + "/")
        self.wait.until(EC.presence_of_element_located((By.NAME, "username"))).send_keys(username)
        self.d.find_element(By.NAME, "password").send_keys(password)
        self.d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        self.wait.until(lambda d: "/auth/login" not in d.current_url)

    def open_trigger_form(self):
        """DAG page -> the Trigger button: the form as it opens."""
        self.d.get("%s/dags/%s" % (self.url, bed.DAG_ID))
        self.wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "button[data-testid=trigger-dag-button]"))).click()
        return self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "button[data-testid=trigger-dag-submit]")))

    def submit_enabled(self):
        b = self.d.find_element(By.CSS_SELECTOR, "button[data-testid=trigger-dag-submit]")
        return b.is_enabled() and b.get_attribute("disabled") is None

    def field(self, param):
        return self.d.find_element(By.NAME, "element_" + param)

    def set_field(self, param, value):
        el = self.field(param)
        el.click()
        el.send_keys(Keys.CONTROL, "a")
        el.send_keys(Keys.BACKSPACE)
        el.send_keys(str(value))
        self.wait.until(lambda d: self.field(param).get_attribute("value") == str(value))

    def submit(self):
        """Presses the form's Trigger; the UI then shows the new run: returns its run id."""
        self.d.find_element(By.CSS_SELECTOR, "button[data-testid=trigger-dag-submit]").click()
        self.wait.until(lambda d: "/runs/" in d.current_url)
        return urllib.parse.unquote(self.d.current_url.split("/runs/", 1)[1].split("/")[0].split("?")[0])

    def open_run(self, run_id, view="grid"):
        """The run's page; `view` is the left panel's Grid or Graph, which the UI keeps in the
        browser's localStorage (`default_dag_view`, as the panel's toggle does)."""
        self.d.get("%s/dags/%s/runs/%s" % (self.url, bed.DAG_ID, urllib.parse.quote(run_id, safe="")))
        if self.d.execute_script("return window.localStorage.getItem('default_dag_view')") != '"%s"' % view:
            self.d.execute_script("window.localStorage.setItem('default_dag_view', JSON.stringify(arguments[0]))", view)
            self.d.refresh()

    def open_graph(self, run_id):
        """The run's page with the graph of its tasks."""
        self.open_run(run_id, view="graph")

    def open_task_log(self, run_id, task_id=bed.PRODUCE):
        """The task's log, its lines wrapped (the log view's Wrap setting, kept in localStorage as
        `log_wrap`): a long `error:` line is read whole, also in a screenshot."""
        self.d.get("%s/dags/%s/runs/%s/tasks/%s" % (self.url, bed.DAG_ID, urllib.parse.quote(run_id, safe=""),
                                                     task_id))
        if self.d.execute_script("return window.localStorage.getItem('log_wrap')") != "true":
            self.d.execute_script("window.localStorage.setItem('log_wrap', 'true')")
            self.d.refresh()

    def shot_log(self, name):
        """The log view in full screen (its own button), then a screenshot of it."""
        self.wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label*='fullscreen']"))).click()
        self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[role=dialog][data-state=open]")))
        # the dialog fades in: a screenshot once no finite animation (the fade; not a spinner) runs
        self.wait.until(lambda d: d.execute_script(
            "return document.getAnimations().filter(a => a.playState === 'running'"
            " && a.effect && a.effect.getComputedTiming().iterations !== Infinity).length") == 0)
        path = self.shot(name)
        self.d.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        return path

    def shows(self, text, timeout=60):
        """Waits until the page shows text (whitespace-insensitive: a URL in a log line is a link, set
        apart by line breaks in the page's text); a screenshot `failed-shows` if it never does."""
        want = " ".join(text.split())
        try:
            WebDriverWait(self.d, timeout).until(
                lambda d: want in " ".join(d.find_element(By.TAG_NAME, "body").text.split()))
        except TimeoutException:
            self.shot("failed-shows")
            raise AssertionError("the page never showed %r (see target/airflow-ui/failed-shows.png)" % text)

    def search_log(self, text):
        """The log view renders only the lines on screen: its search box brings a line into view."""
        box = self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "input[placeholder^='Search logs']")))
        box.clear()
        box.send_keys(text)


@pytest.fixture(scope="session")
def ui():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1400,1000"):
        options.add_argument(a)
    try:
        driver = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")),
                                  options=options)
    except WebDriverException as e:
        pytest.fail("headless Chromium did not start (tests/stack install-deps installs chromium and "
                    "chromium-driver): %s" % e)
    u = Ui(driver, bed.env("AIRFLOW_API_URL"))
    u.login(bed.env("AIRFLOW_USERNAME"), bed.env("AIRFLOW_PASSWORD"))
    yield u
    driver.quit()
