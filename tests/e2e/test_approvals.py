"""`ask` verdicts through the official MCP Python SDK's elicitation callback, with the shipped
bundle: `approval.tools` makes every call of `echo_*` wait for a person, `approval.hosts` every
request to `localhost`. The person is the test's callback (legacy stateful protocol, which lets
a server ask its client); an operator is `gatehouse approvals` on the same approvals file.
Every question and answer must be in the audit log."""

from __future__ import annotations

import asyncio
import json
import subprocess

import mcp.types as types
import pytest

from conftest import REPO, audit_rows, client_for, serve_args

pytestmark = pytest.mark.anyio


class Person:
    """The person behind the client: answers each question with the next of `answers` (a
    `decision` value, or a callable producing the result), after `delay` seconds; remembers
    every question it was asked."""

    def __init__(self, *answers, delay: float = 0.0):
        self.answers = list(answers)
        self.delay = delay
        self.asked: list[str] = []

    async def __call__(self, context, params: types.ElicitRequestParams):
        self.asked.append(params.message)
        await asyncio.sleep(self.delay)
        answer = self.answers.pop(0) if self.answers else "deny"
        if answer == "decline":
            return types.ElicitResult(action="decline")
        if answer == "silence":
            await asyncio.sleep(3600)
        content = {"decision": answer}
        if answer == "approve_minutes":
            content["minutes"] = 5
        return types.ElicitResult(action="accept", content=content)


@pytest.fixture
def gateway(components, cache_dir, tmp_path):
    """`gatehouse serve` arguments (the shipped bundle, dev data asking about echo calls and
    requests to localhost) and the audit log and approvals file they use."""
    data = tmp_path / "data.json"
    data.write_text(json.dumps({
        "settings": {"mode": "dev"},
        "principals": {"local": {"tools": ["echo_*", "fetch_*"]}, "anonymous": {"tools": ["echo_*"]}},
        "http": {"allowed_domains": ["127.0.0.1", "localhost"], "allowed_schemes": ["http"], "allow_private": True},
        "approval": {"tools": ["echo_*"], "hosts": ["localhost"]},
        # A short wall-clock limit: a person's reading time must not count against it.
        "limits": {"defaults": {"timeout_ms": 1500}},
    }))
    approvals = tmp_path / "approvals.db"
    config = tmp_path / "gatehouse.toml"
    config.write_text(f'[approvals]\npath = "{approvals}"\ntimeout_secs = 3\n')
    db = tmp_path / "audit.db"
    args = serve_args(components, cache_dir, "--config", str(config), "--policy-data", str(data),
                      names=("echo", "fetch"), policies=REPO / "policies", audit=db)
    return args, db, approvals


def legacy(gatehouse, args, person=None):
    """A client on the legacy (stateful) protocol over stdio, eliciting through `person`."""
    options = {"mode": "legacy"}
    if person is not None:
        options["elicitation_callback"] = person
    return client_for("stdio", gatehouse, args, **options)


def text(result) -> str:
    return " ".join(block.text for block in result.content if hasattr(block, "text"))


def approvals_cli(gatehouse, approvals, *args) -> subprocess.CompletedProcess:
    return subprocess.run([gatehouse, "approvals", "--db", str(approvals), *args], capture_output=True, text=True, timeout=30)


async def test_an_approved_call_runs_and_both_question_and_answer_are_recorded(gatehouse, gateway):
    args, db, _ = gateway
    person = Person("approve_once")
    async with legacy(gatehouse, args, person) as client:
        result = await client.call_tool("echo_echo", {"message": "deploy"})
    assert not result.is_error, result
    assert result.structured_content == {"result": "deploy"}
    assert len(person.asked) == 1
    question = person.asked[0]
    assert "echo_echo" in question and "deploy" in question and "approval.tools" in question
    rows = audit_rows(db, "SELECT phase, verdict, input, obligations FROM entries WHERE phase IN ('call', 'approval', 'outcome') ORDER BY seq")
    assert [(phase, verdict) for phase, verdict, _, _ in rows] == [("call", "ask"), ("approval", "approve"), ("outcome", "ok")]
    question_id = json.loads(rows[0][3])["approval"]
    answer = json.loads(rows[1][2])
    assert answer["question"]["id"] == question_id and question_id in question
    assert answer["answer"] == {"approved": True, "scope": {"scope": "once"}, "by": {"kind": "client"}}
    (call_id,) = audit_rows(db, "SELECT call_id FROM entries WHERE phase = 'approval'")[0]
    story = subprocess.run([gatehouse, "audit", "show", str(db), call_id], capture_output=True, text=True, timeout=30)
    assert story.returncode == 0, story.stderr
    assert f"asked {question_id}: calls of echo_echo need a person's approval" in story.stdout, story.stdout
    assert f"{question_id} answered by client (once)" in story.stdout, story.stdout


async def test_a_declined_call_is_denied_with_the_reason(gatehouse, gateway):
    args, db, _ = gateway
    async with legacy(gatehouse, args, Person("decline")) as client:
        result = await client.call_tool("echo_echo", {"message": "deploy"})
    assert result.is_error
    assert "the person asked denied it" in text(result), text(result)
    assert "approval.tools" in text(result)
    assert audit_rows(db, "SELECT verdict FROM entries WHERE phase = 'approval'") == [("deny",)]
    assert audit_rows(db, "SELECT verdict FROM entries WHERE phase = 'outcome'") == [("denied",)]


async def test_approval_for_the_session_covers_the_same_call_only(gatehouse, gateway):
    args, db, _ = gateway
    person = Person("approve_session", "approve_once")
    async with legacy(gatehouse, args, person) as client:
        first = await client.call_tool("echo_echo", {"message": "same"})
        again = await client.call_tool("echo_echo", {"message": "same"})
        assert len(person.asked) == 1, "the identical call was asked about again"
        changed = await client.call_tool("echo_echo", {"message": "changed"})
        assert len(person.asked) == 2, "a changed argument must be a new question"
    assert not first.is_error and not again.is_error and not changed.is_error
    # A new session is asked again.
    later = Person("deny")
    async with legacy(gatehouse, args, later) as client:
        refused = await client.call_tool("echo_echo", {"message": "same"})
    assert len(later.asked) == 1 and refused.is_error
    answers = [json.loads(i)["answer"]["by"] for (i,) in audit_rows(db, "SELECT input FROM entries WHERE phase = 'approval' ORDER BY seq")]
    assert [a["kind"] for a in answers] == ["client", "grant", "client", "client"]


async def test_nobody_answering_in_time_denies(gatehouse, gateway):
    args, db, approvals = gateway
    async with legacy(gatehouse, args, Person("silence")) as client:
        result = await client.call_tool("echo_echo", {"message": "deploy"})
    assert result.is_error and "within 3 s" in text(result), text(result)
    listed = json.loads(approvals_cli(gatehouse, approvals, "list", "--all", "--json").stdout)
    assert [q["status"] for q in listed] == ["expired"]
    assert audit_rows(db, "SELECT json_extract(input, '$.answer.by.kind') FROM entries WHERE phase = 'approval'") == [("timeout",)]


async def test_a_client_that_cannot_elicit_gets_a_clear_error_and_an_operator_can_approve(gatehouse, gateway):
    args, db, approvals = gateway
    async with legacy(gatehouse, args) as client:
        refused = await client.call_tool("echo_echo", {"message": "deploy"})
        assert refused.is_error
        message = text(refused)
        assert "approval required" in message and "gatehouse approvals approve q-" in message, message
        pending = approvals_cli(gatehouse, approvals, "list")
        assert pending.returncode == 0 and "echo_echo" in pending.stdout, pending
        question = json.loads(approvals_cli(gatehouse, approvals, "list", "--json").stdout)[0]["id"]
        assert question in message
        approved = approvals_cli(gatehouse, approvals, "approve", question, "--as", "carol")
        assert approved.returncode == 0, approved.stderr
        retried = await client.call_tool("echo_echo", {"message": "deploy"})
        assert not retried.is_error, text(retried)
        once_only = await client.call_tool("echo_echo", {"message": "deploy"})
        assert once_only.is_error, "an approval given once let a second call through"
    again = approvals_cli(gatehouse, approvals, "approve", question)
    assert again.returncode != 0 and "already approved" in again.stderr, again.stderr
    by = [json.loads(i)["answer"]["by"] for (i,) in audit_rows(db, "SELECT input FROM entries WHERE phase = 'approval' ORDER BY seq")]
    assert by[:2] == [{"kind": "nobody"}, {"kind": "grant", "name": question}]


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_a_client_on_2026_07_28_answers_by_calling_again(gatehouse, gateway, transport):
    """That revision forbids a server's requests to its client: the call is answered
    `input_required` with the form, and the SDK calls again with the person's answer."""
    args, db, _ = gateway
    person = Person("approve_once", "decline")
    async with client_for(transport, gatehouse, args, mode="2026-07-28", elicitation_callback=person) as client:
        approved = await client.call_tool("echo_echo", {"message": "deploy"})
        declined = await client.call_tool("echo_echo", {"message": "deploy"})
    assert not approved.is_error and approved.structured_content == {"result": "deploy"}, approved
    assert declined.is_error and "the person asked denied it" in text(declined)
    assert len(person.asked) == 2 and "echo_echo" in person.asked[0]
    rows = audit_rows(db, "SELECT call_id, phase, verdict, obligations FROM entries WHERE phase IN ('call', 'approval', 'outcome') ORDER BY seq")
    assert [(phase, verdict) for _, phase, verdict, _ in rows] == [
        ("call", "ask"), ("outcome", "input_required"),
        ("call", "ask"), ("approval", "approve"), ("outcome", "ok"),
        ("call", "ask"), ("outcome", "input_required"),
        ("call", "ask"), ("approval", "deny"), ("outcome", "denied"),
    ]
    # Both rounds of a call name the one question.
    assert json.loads(rows[0][3])["approval"] == json.loads(rows[2][3])["approval"]


async def test_an_answer_sent_back_for_another_action_is_refused(gatehouse, gateway):
    """The `requestState` a client echoes is only a handle: an approval given for one call does
    not let a different call through."""
    args, _, _ = gateway
    async with client_for("stdio", gatehouse, args, mode="2026-07-28", elicitation_callback=Person()) as client:
        asked = await client.session.call_tool("echo_echo", {"message": "harmless"}, allow_input_required=True)
        assert isinstance(asked, types.InputRequiredResult), asked
        [key] = asked.input_requests
        yes = {key: {"action": "accept", "content": {"decision": "approve_once"}}}
        swapped = await client.session.call_tool("echo_echo", {"message": "rm -rf /"}, input_responses=yes, request_state=asked.request_state)
        assert swapped.is_error and "asked about another action" in text(swapped), text(swapped)
        forged = await client.session.call_tool("echo_echo", {"message": "harmless"}, input_responses=yes, request_state="q-1234567890abcdef")
        assert forged.is_error and "not waiting for an answer" in text(forged), text(forged)
        junk = await client.session.call_tool("echo_echo", {"message": "harmless"}, input_responses=yes, request_state="q-1\n2026 INFO forged log line")
        assert junk.is_error and "not a question this gateway asked" in text(junk), text(junk)
        honest = await client.session.call_tool("echo_echo", {"message": "harmless"}, input_responses=yes, request_state=asked.request_state)
        assert not honest.is_error, text(honest)


async def test_a_modern_client_without_elicitation_gets_the_clear_error(gatehouse, gateway):
    args, _, _ = gateway
    async with client_for("http", gatehouse, args) as client:
        result = await client.call_tool("echo_echo", {"message": "deploy"})
    assert result.is_error and "approval required" in text(result), text(result)


async def test_two_calls_asking_at_once_get_two_questions(gatehouse, gateway):
    args, db, _ = gateway
    person = Person("approve_once", "deny", delay=0.5)
    async with legacy(gatehouse, args, person) as client:
        results = await asyncio.gather(
            client.call_tool("echo_echo", {"message": "one"}),
            client.call_tool("echo_echo", {"message": "two"}),
        )
    assert len(person.asked) == 2
    ids = {line for q in person.asked for line in q.splitlines() if line.startswith("Question: ")}
    assert len(ids) == 2, person.asked
    assert sorted(r.is_error for r in results) == [False, True]


async def test_a_tools_request_waits_for_approval_without_running_out_of_time(gatehouse, gateway, web_server):
    """The person takes longer than the call's 1.5 s limit to approve the request to
    localhost; the tool still gets its response, and a denied request never reaches the
    server."""
    args, db, _ = gateway
    port = web_server.url.rsplit(":", 1)[1]
    slow = Person("approve_once", delay=2.0)
    async with legacy(gatehouse, args, slow) as client:
        fetched = await client.call_tool("fetch_fetch", {"url": f"http://localhost:{port}/hello"})
    assert "hello from the test server" in json.dumps(fetched.structured_content), fetched
    assert any(f"GET http://localhost:{port}/hello" in q for q in slow.asked), slow.asked
    async with legacy(gatehouse, args, Person("deny")) as client:
        denied = await client.call_tool("fetch_fetch", {"url": f"http://localhost:{port}/denied"})
    assert denied.structured_content == {"result": {"err": "ErrorCode::HttpRequestDenied"}}, denied
    assert web_server.paths == ["/hello"]
    rows = audit_rows(db, "SELECT phase, verdict, reasons FROM entries WHERE phase IN ('http', 'approval') ORDER BY seq")
    assert [(phase, verdict) for phase, verdict, _ in rows] == [("http", "ask"), ("approval", "approve"), ("http", "ask"), ("approval", "deny")]
    assert json.loads(rows[3][2]) == ["the person asked denied it"]


async def test_an_approval_for_minutes_outlives_a_restart(gatehouse, gateway):
    args, db, approvals = gateway
    async with legacy(gatehouse, args, Person("approve_minutes")) as client:
        first = await client.call_tool("echo_echo", {"message": "nightly"})
    assert not first.is_error, first
    # Another gateway process on the same files: the grant is in the approvals file.
    nobody = Person()
    async with legacy(gatehouse, args, nobody) as client:
        again = await client.call_tool("echo_echo", {"message": "nightly"})
        other = await client.call_tool("echo_echo", {"message": "other"})
    assert not again.is_error, "the grant for 5 minutes did not outlive the restart"
    assert len(nobody.asked) == 1 and '"message":"other"' in nobody.asked[0], nobody.asked
    assert other.is_error
    listed = json.loads(approvals_cli(gatehouse, approvals, "list", "--all", "--json").stdout)
    assert sorted(q["status"] for q in listed) == ["approved", "denied"]
    assert [q["scope"] for q in listed if q["status"] == "approved"] == ["minutes:5"]
