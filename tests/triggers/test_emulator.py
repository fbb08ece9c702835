"""The dbt Cloud emulator over real loopback HTTP: API shapes, run lifecycle, faults."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from afterload.triggers.dbt_cloud.emulator import (
    DbtCloudEmulator,
    EmulatorServer,
    EmulatorSettings,
    Fault,
)

KEY = "emulator-key"
AUTH = {"Authorization": f"Token {KEY}"}
START = 1_795_000_000.0  # 2026-11-18, a value the tests' clock restarts from
FIRST_ID = 70506183629193
DEFAULTS: dict[str, Any] = {
    "accounts": {1: [1, 2], 2: [3]},
    "forbidden_accounts": {9},
    "queue_seconds": 1.0,  # 0.5 s queued, then 0.5 s starting
    "run_seconds": 5.0,
}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00:00$")
INVALID_TOKEN = {
    "status": {
        "code": 401,
        "is_success": False,
        "user_message": "Invalid token.",
        "developer_message": None,
    },
    "data": None,
}


class FakeTime:
    """The emulator's clock, moved by hand so runs progress without sleeping."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Env:
    emulator: DbtCloudEmulator
    clock: FakeTime
    url: str
    api: httpx.Client  # authenticated, rooted at account 1
    control: httpx.Client  # no credentials, rooted at the server

    def configure(self, **settings: Any) -> None:
        self.emulator.reset(EmulatorSettings(**{**DEFAULTS, **settings}))

    def trigger(self, job: int = 1, cause: str = "test") -> dict[str, Any]:
        response = self.api.post(f"jobs/{job}/run/", json={"cause": cause})
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def run(self, run_id: int) -> dict[str, Any]:
        data: dict[str, Any] = self.api.get(f"runs/{run_id}/").json()["data"]
        return data

    def list_ids(self, **params: Any) -> list[int]:
        response = self.api.get("runs/", params=params)
        assert response.status_code == 200, response.text
        return [run["id"] for run in response.json()["data"]]


@pytest.fixture(scope="module")
def served() -> Iterator[Env]:
    """One server and two clients for the module: starting and stopping them is the slow part."""
    clock = FakeTime()
    emulator = DbtCloudEmulator(EmulatorSettings(**DEFAULTS), clock=clock)
    with EmulatorServer(emulator) as server:
        base = f"{server.url}/api/v2/accounts/1/"
        with (
            httpx.Client(base_url=base, headers=AUTH, timeout=5) as api,
            httpx.Client(base_url=server.url, timeout=5) as control,
        ):
            yield Env(emulator, clock, server.url, api, control)


@pytest.fixture
def env(served: Env) -> Env:
    served.clock.now = START
    served.emulator.reset(EmulatorSettings(**DEFAULTS))
    return served


# ---- envelope, paths, auth -------------------------------------------------------------------


def test_job_in_the_success_envelope(env: Env) -> None:
    body = env.api.get("jobs/1/").json()
    assert body["status"] == {
        "code": 200,
        "is_success": True,
        "user_message": "Success!",
        "developer_message": "",
    }
    job = body["data"]
    assert (job["id"], job["account_id"], job["state"]) == (1, 1, 1)
    assert {"project_id", "environment_id", "name", "settings", "triggers"} <= job.keys()


@pytest.mark.parametrize("slash", ["/", ""])
def test_every_endpoint_with_and_without_trailing_slash(env: Env, slash: str) -> None:
    created = env.api.post(f"jobs/1/run{slash}", json={"cause": "c"})
    run_id = created.json()["data"]["id"]
    answers = [
        created,
        env.api.get(f"jobs/1{slash}"),
        env.api.get(f"runs{slash}"),
        env.api.get(f"runs/{run_id}{slash}"),
        env.api.post(f"runs/{run_id}/cancel{slash}"),
    ]
    assert [a.status_code for a in answers] == [200] * 5  # served directly, never redirected


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "token"])
def test_token_and_bearer_are_equivalent(env: Env, scheme: str) -> None:
    response = env.api.get("jobs/1/", headers={"Authorization": f"{scheme} {KEY}"})
    assert response.status_code == 200


@pytest.mark.parametrize("header", [None, "Token wrong", KEY, f"Basic {KEY}", "Token"])
def test_401_body_is_exactly_dbts(env: Env, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = env.control.get("/api/v2/accounts/1/jobs/1/", headers=headers)
    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v2/accounts/5/jobs/1/"),  # unknown account
        ("GET", "/api/v2/accounts/1/jobs/3/"),  # job of another account
        ("POST", "/api/v2/accounts/1/jobs/99/run/"),
        ("GET", "/api/v2/accounts/1/runs/123/"),
        ("POST", "/api/v2/accounts/1/runs/123/cancel/"),
        ("GET", "/api/v2/accounts/1/nothing-here/"),
    ],
)
def test_unknown_things_are_404_envelopes(env: Env, method: str, path: str) -> None:
    response = env.api.request(method, env.url + path, json={"cause": "c"})
    assert response.status_code == 404
    status = response.json()["status"]
    assert status["code"] == 404 and not status["is_success"] and status["user_message"]


def test_run_of_another_account_is_404(env: Env) -> None:
    created = env.api.post(f"{env.url}/api/v2/accounts/2/jobs/3/run/", json={"cause": "x"})
    run = created.json()["data"]
    assert env.api.get(f"runs/{run['id']}/").status_code == 404


def test_forbidden_account_is_403(env: Env) -> None:
    response = env.api.get(f"{env.url}/api/v2/accounts/9/jobs/1/")
    assert response.status_code == 403
    assert response.json()["status"]["user_message"] == "Forbidden: Access denied"


# ---- trigger ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "send",
    [{"json": {}}, {"json": {"cause": ""}}, {}, {"data": {"cause": ""}}, {"json": {"x": 1}}],
    ids=["empty-json", "empty-cause", "no-body", "empty-form", "other-fields"],
)
def test_missing_cause_is_400(env: Env, send: dict[str, Any]) -> None:
    response = env.api.post("jobs/1/run/", **send)
    assert response.status_code == 400
    body = response.json()
    assert body["status"]["code"] == 400 and not body["status"]["is_success"]
    assert body["data"] == {"cause": ["This field is required."]}
    assert env.emulator.runs == []


@pytest.mark.parametrize("cause", ['say "hi"', "back\\slash \\n", "naïve ünïcødé ✓ 数据 🚀"])
@pytest.mark.parametrize("encoding", ["json", "data"])
def test_cause_round_trips_intact(env: Env, cause: str, encoding: str) -> None:
    body: dict[str, Any] = {encoding: {"cause": cause}}  # a JSON or a form-urlencoded body
    created = env.api.post("jobs/1/run/", **body).json()["data"]
    assert created["trigger"]["cause"] == cause
    assert env.run(created["id"])["trigger"]["cause"] == cause


def test_trigger_answers_a_queued_run(env: Env) -> None:
    run = env.trigger(job=2, cause="why")
    assert run["id"] == FIRST_ID and run["id"] > 2**32
    assert (run["status"], run["status_humanized"], run["in_progress"]) == (1, "Queued", True)
    assert (run["job_definition_id"], run["job_id"], run["account_id"]) == (2, 2, 1)
    assert run["trigger"]["cause_category"] == "api"
    assert run["trigger"]["job_definition_id"] == 2
    assert run["job"]["id"] == 2
    assert TIMESTAMP.match(run["created_at"]) and run["created_at"].startswith("2026-11-18")
    assert run["finished_at"] is None and run["href"].endswith(f"/runs/{run['id']}/")
    assert env.trigger()["id"] == FIRST_ID + 1


# ---- list runs -------------------------------------------------------------------------------


def _mixed_runs(env: Env) -> dict[str, int]:
    """One run in each state: done, running, queued (behind it), starting, cancelled."""
    done = env.trigger(job=2)["id"]
    env.clock.advance(10)
    running = env.trigger(job=1)["id"]
    queued = env.trigger(job=1)["id"]  # serial: waits for `running`
    env.clock.advance(2)
    starting = env.trigger(job=2)["id"]
    cancelled = env.trigger(job=2)["id"]
    env.api.post(f"runs/{cancelled}/cancel/")
    env.clock.advance(0.75)
    states = {
        "done": done,
        "running": running,
        "queued": queued,
        "starting": starting,
        "cancelled": cancelled,
    }
    expected = {"done": 10, "running": 3, "queued": 1, "starting": 2, "cancelled": 30}
    assert {name: env.run(i)["status"] for name, i in states.items()} == expected
    return states


@pytest.mark.parametrize("status_in", ["[1,2,3]", "[1, 2, 3]"])
def test_status_in_finds_queued_starting_and_running(env: Env, status_in: str) -> None:
    runs = _mixed_runs(env)
    found = env.list_ids(status__in=status_in)
    assert found == [runs["running"], runs["queued"], runs["starting"]]
    assert env.list_ids(status__in="[10, 30]") == [runs["done"], runs["cancelled"]]
    assert env.list_ids(status=30) == [runs["cancelled"]]
    assert env.list_ids(status__in=status_in, job_definition_id=2) == [runs["starting"]]


def test_status_in_is_sent_as_one_encoded_parameter(env: Env) -> None:
    env.trigger()
    response = env.api.get("runs/?status__in=%5B1%2C2%2C3%5D")
    assert response.json()["extra"]["filters"]["status__in"] == [1, 2, 3]
    assert env.emulator.requests[-1]["query"] == "status__in=%5B1%2C2%2C3%5D"


@pytest.mark.parametrize("value", ["1,2,3", "[1,'a']", "queued", "[true]", "2"])
def test_invalid_status_in_is_400(env: Env, value: str) -> None:
    response = env.api.get("runs/", params={"status__in": value})
    assert response.status_code == 400
    message = f"'{value}' is not valid under any of the given schemas"
    assert response.json()["data"] == {"status__in": message}


def test_pagination_ordering_and_id_gt(env: Env) -> None:
    ids = [env.trigger(cause=str(n))["id"] for n in range(5)]
    body = env.api.get("runs/", params={"order_by": "-id", "limit": 2, "offset": 1}).json()
    assert [run["id"] for run in body["data"]] == [ids[3], ids[2]]
    assert body["extra"]["order_by"] == "-id"
    assert body["extra"]["pagination"] == {"count": 2, "total_count": 5}
    assert body["extra"]["filters"]["limit"] == 2 and body["extra"]["filters"]["offset"] == 1
    assert env.list_ids() == ids  # default order_by=id
    assert env.list_ids(id__gt=ids[2]) == ids[3:]
    default = env.api.get("runs/").json()["extra"]
    assert (default["filters"]["limit"], default["filters"]["offset"]) == (100, 0)


def test_order_by_finished_at_puts_unfinished_last(env: Env) -> None:
    env.configure(serial=False)
    slow = env.trigger(job=1)["id"]
    env.clock.advance(1)
    fast = env.trigger(job=2)["id"]
    env.api.post(f"runs/{fast}/cancel/")  # finishes first
    env.clock.advance(1)
    unfinished = env.trigger(job=1)["id"]
    env.clock.advance(5)  # `slow` is done, `unfinished` is running
    assert env.list_ids(order_by="finished_at") == [fast, slow, unfinished]
    assert env.list_ids(order_by="-finished_at") == [unfinished, slow, fast]
    assert env.list_ids(order_by="-created_at") == [unfinished, fast, slow]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"order_by": "status"}, "order_by"),
        ({"id__gt": "x"}, "id__gt"),
    ],
)
def test_bad_list_parameters_are_400(env: Env, params: dict[str, Any], field: str) -> None:
    response = env.api.get("runs/", params=params)
    assert response.status_code == 400 and field in response.json()["data"]


# ---- lifecycle -------------------------------------------------------------------------------


def test_run_moves_queued_starting_running_success_with_the_clock(env: Env) -> None:
    run_id = env.trigger()["id"]
    seen = [env.run(run_id)]
    for step in (0.5, 0.5, 4.75, 0.25):
        env.clock.advance(step)
        seen.append(env.run(run_id))
    assert [r["status"] for r in seen] == [1, 2, 3, 3, 10]
    assert [r["dequeued_at"] is not None for r in seen] == [False, True, True, True, True]
    assert [r["started_at"] is not None for r in seen] == [False, False, True, True, True]
    assert [r["is_running"] for r in seen] == [False, False, True, True, False]
    final = seen[-1]
    assert final["is_complete"] and final["is_success"] and not final["in_progress"]
    assert TIMESTAMP.match(final["finished_at"]) and final["updated_at"] == final["finished_at"]
    assert (final["duration"], final["queued_duration"], final["run_duration"]) == (
        "00:00:06",
        "00:00:01",
        "00:00:05",
    )
    assert final["run_duration_humanized"] == "5 seconds"


def test_fail_rate_one_ends_in_error(env: Env) -> None:
    env.configure(fail_rate=1.0)
    run_id = env.trigger()["id"]
    env.clock.advance(10)
    run = env.run(run_id)
    assert (run["status"], run["status_humanized"]) == (20, "Error")
    assert run["is_error"] and run["can_retry"] and not run["is_success"]


def test_runs_of_one_job_run_one_after_the_other(env: Env) -> None:
    first, second = env.trigger()["id"], env.trigger()["id"]
    other_job = env.trigger(job=2)["id"]
    env.clock.advance(3)
    assert [env.run(i)["status"] for i in (first, second, other_job)] == [3, 1, 3]
    env.clock.advance(3.5)  # first finished at 6, second queued since then
    assert [env.run(i)["status"] for i in (first, second)] == [10, 2]
    env.clock.advance(0.5)
    assert env.run(second)["status"] == 3


def test_parallel_runs_when_not_serial(env: Env) -> None:
    env.configure(serial=False)
    first, second = env.trigger()["id"], env.trigger()["id"]
    env.clock.advance(2)
    assert [env.run(i)["status"] for i in (first, second)] == [3, 3]


def test_cancel_and_cancel_again(env: Env) -> None:
    first, second = env.trigger()["id"], env.trigger()["id"]
    env.clock.advance(2)
    response = env.api.post(f"runs/{first}/cancel/")
    assert response.status_code == 200
    run = response.json()["data"]
    assert (run["status"], run["status_humanized"], run["is_cancelled"]) == (30, "Cancelled", True)
    assert run["status_message"] == "Cancelled by user." and run["finished_at"] is not None
    env.clock.advance(1)
    again = env.api.post(f"runs/{first}/cancel/")
    assert again.status_code == 200 and again.json()["data"] == env.run(first)
    assert again.json()["data"]["finished_at"] == run["finished_at"]
    assert env.run(second)["status"] == 3  # the queue moved on at the cancel


def test_cancelling_a_finished_run_leaves_it_unchanged(env: Env) -> None:
    run_id = env.trigger()["id"]
    env.clock.advance(10)
    before = env.run(run_id)
    response = env.api.post(f"runs/{run_id}/cancel/")
    assert response.status_code == 200 and response.json()["data"] == before
    assert before["status"] == 10


def test_cancelling_a_queued_run_never_starts_it(env: Env) -> None:
    run_id = env.trigger()["id"]
    env.api.post(f"runs/{run_id}/cancel/")
    env.clock.advance(10)
    run = env.run(run_id)
    assert run["status"] == 30 and run["started_at"] is None and run["dequeued_at"] is None


# ---- rate limit and latency ------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(env: Env) -> None:
    env.configure(rate_limit=3)
    assert [env.api.get("jobs/1/").status_code for _ in range(3)] == [200] * 3
    limited = env.api.get("jobs/1/")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "60"
    assert limited.json()["status"]["code"] == 429
    other = env.api.get(f"{env.url}/api/v2/accounts/2/jobs/3/")
    assert other.status_code == 200  # counted per account
    env.clock.advance(45)
    assert env.api.get("jobs/1/").headers["Retry-After"] == "15"
    env.clock.advance(15)
    assert env.api.get("jobs/1/").status_code == 200


def test_latency_delays_every_answer(env: Env) -> None:
    env.configure(latency=0.05)
    started = time.monotonic()
    env.api.get("jobs/1/")
    assert time.monotonic() - started >= 0.05


# ---- faults ----------------------------------------------------------------------------------


def test_fault_answers_without_doing_the_work(env: Env) -> None:
    html = "<html><body>502 Bad Gateway</body></html>"
    env.emulator.inject(Fault(method="POST", path=r"/run/?$", status=502, body=html))
    response = env.api.post("jobs/1/run/", json={"cause": "c"})
    assert response.status_code == 502 and response.text == html
    assert response.headers["content-type"].startswith("text/html")
    assert env.emulator.runs == []
    assert env.api.post("jobs/1/run/", json={"cause": "c"}).status_code == 200  # used up


def test_fault_after_the_work_creates_the_run_the_client_never_saw(env: Env) -> None:
    env.emulator.inject(Fault(method="POST", path="/run", status=500, after=True))
    response = env.api.post("jobs/1/run/", json={"cause": "ambiguous"})
    assert response.status_code == 500 and response.json()["status"]["is_success"] is False
    (run,) = env.emulator.runs
    assert run["trigger"]["cause"] == "ambiguous"
    assert env.list_ids(status__in="[1,2,3]") == [run["id"]]


def test_fault_with_retry_after(env: Env) -> None:
    env.emulator.inject(Fault(method="GET", path="/jobs/", status=429, retry_after=7))
    response = env.api.get("jobs/1/")
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"


def test_fault_matching_and_times(env: Env) -> None:
    env.emulator.inject(Fault(method="get", path=r"/jobs/1/$", status=503, times=2))
    assert env.api.post("jobs/1/run/", json={"cause": "c"}).status_code == 200  # method differs
    assert env.api.get("jobs/1").status_code == 200  # path differs
    assert [env.api.get("jobs/1/").status_code for _ in range(3)] == [503, 503, 200]


def test_late_success_arrives_after_its_delay(env: Env) -> None:
    env.emulator.inject(Fault(path="/run", status=200, after=True, delay=0.1))
    started = time.monotonic()
    response = env.api.post("jobs/1/run/", json={"cause": "late"})
    assert time.monotonic() - started >= 0.1
    assert response.json()["data"]["trigger"]["cause"] == "late"  # the real answer


def test_answer_after_the_client_timeout_still_created_the_run(env: Env) -> None:
    env.emulator.inject(Fault(path="/run", status=200, after=True, delay=0.3))
    with pytest.raises(httpx.ReadTimeout):
        env.api.post("jobs/1/run/", json={"cause": "timed out"}, timeout=0.05)
    assert [run["trigger"]["cause"] for run in env.emulator.runs] == ["timed out"]


def test_dropped_connection_after_the_work(env: Env) -> None:
    env.emulator.inject(Fault(method="POST", path="/run", drop=True))
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        env.api.post("jobs/1/run/", json={"cause": "lost"})
    assert [run["trigger"]["cause"] for run in env.emulator.runs] == ["lost"]
    last = env.emulator.requests[-1]
    assert (last["status"], last["fault"]) == (None, True)
    assert env.api.get("jobs/1/").status_code == 200  # the client recovers on a new connection


def test_faults_over_http(env: Env) -> None:
    control = env.control
    armed = control.post(
        "/_emulator/faults", json={"method": "GET", "path": "/jobs/", "status": 503}
    )
    assert armed.status_code == 201
    assert env.api.get("jobs/1/").status_code == 503
    assert env.api.get("jobs/1/").status_code == 200
    assert control.post("/_emulator/faults", json={"drop": True, "status": 500}).status_code == 400
    assert control.post("/_emulator/faults", json={"nonsense": 1}).status_code == 400


def test_fault_needs_an_effect() -> None:
    with pytest.raises(ValueError):
        Fault(path="/run")
    with pytest.raises(ValueError):
        Fault(drop=True, status=500)
    with pytest.raises(ValueError):
        Fault(path="(", status=500)


# ---- inspection ------------------------------------------------------------------------------


def test_request_log_keeps_the_scheme_never_the_key(env: Env) -> None:
    env.api.get("jobs/1/", params={"x": "1"})
    env.api.get("jobs/1/", headers={"Authorization": f"Bearer {KEY}"})
    env.api.get("jobs/1/", headers={"Authorization": KEY})
    log = env.emulator.requests
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("GET", "/api/v2/accounts/1/jobs/1/", 200),
        ("GET", "/api/v2/accounts/1/jobs/1/", 200),
        ("GET", "/api/v2/accounts/1/jobs/1/", 401),
    ]
    assert [r["auth_scheme"] for r in log] == ["Token", "Bearer", "other"]
    assert log[0]["query"] == "x=1" and log[0]["time"] == START
    over_http = env.control.get("/_emulator/requests").text
    assert KEY not in repr(log) and KEY not in over_http


def test_control_endpoints(env: Env) -> None:
    run_id = env.trigger()["id"]
    control = env.control
    assert [run["id"] for run in control.get("/_emulator/runs").json()] == [run_id]
    assert len(control.get("/_emulator/requests").json()) == 1
    env.emulator.inject(Fault(path="/jobs/", status=500))
    assert control.post("/_emulator/reset").status_code == 200
    assert env.emulator.runs == [] and env.emulator.requests == []
    assert env.api.get("jobs/1/").status_code == 200  # the fault went too
    assert env.trigger()["id"] == FIRST_ID  # ids restart


def test_another_server_picks_another_free_port(env: Env) -> None:
    server = EmulatorServer(DbtCloudEmulator())
    with pytest.raises(RuntimeError):
        _ = server.url
    with server:
        assert server.url != env.url and server.url.startswith("http://127.0.0.1:")
        response = env.api.get(f"{server.url}/api/v2/accounts/1/jobs/1/")
        assert response.status_code == 200
