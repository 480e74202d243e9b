"""A job's state from what the bucket holds and whether its node lives."""

from __future__ import annotations

from vcloud_ansible.jobs.spec import JobRow
from vcloud_ansible.jobs.status import counts, job_status
from vcloud_ansible.jobs.store import JobObjects

ROW = JobRow(index=2, line=4, instance_type="t3.micro", command="true", name="j2")


def test_states() -> None:
    assert job_status(ROW, JobObjects(), set()).label == "pending"
    launched = JobObjects(launches={1: {"node": "a-0"}})
    assert job_status(ROW, launched, {"a-0"}).label == "setting up"  # the node has not reported yet
    assert job_status(ROW, launched, set()).label == "lost"
    running = JobObjects(launches={1: {"node": "a-0"}}, state={"state": "running", "attempt": 1})
    assert job_status(ROW, running, {"a-0"}).label == "running"
    up = JobObjects(launches={1: {"node": "a-0"}}, state={"state": "uploading", "attempt": 1})
    assert job_status(ROW, up, {"a-0"}).label == "uploading"


def test_final_only_with_result_and_manifest_of_the_newest_attempt() -> None:
    done = JobObjects(launches={1: {"node": "a-0"}}, result={"attempt": 1, "exit_code": 3, "started_at": 1.0,
                                                              "ended_at": 2.5},
                      manifest={"attempt": 1})
    st = job_status(ROW, done, set())  # the node is gone: it removed itself after uploading
    assert (st.label, st.started_at, st.ended_at, st.attempt) == ("failed(3)", 1.0, 2.5, 1)
    no_manifest = JobObjects(launches={1: {"node": "a-0"}}, result={"attempt": 1, "exit_code": 0})
    assert job_status(ROW, no_manifest, set()).label == "lost"  # its upload never completed
    # attempt 2 started after attempt 1's result: attempt 1's result does not count
    again = JobObjects(launches={1: {"node": "a-0"}, 2: {"node": "a-1"}},
                       result={"attempt": 1, "exit_code": 0}, manifest={"attempt": 1},
                       state={"state": "running", "attempt": 1})
    st = job_status(ROW, again, {"a-1"})
    assert (st.label, st.attempt, st.node) == ("setting up", 2, "a-1")


def test_counts() -> None:
    done = JobObjects(launches={1: {"node": "n"}}, result={"attempt": 1, "exit_code": 0}, manifest={"attempt": 1})
    jobs = [job_status(ROW, done, set()), job_status(ROW, done, set()), job_status(ROW, JobObjects(), set())]
    assert counts(jobs) == {"done(0)": 2, "pending": 1}
