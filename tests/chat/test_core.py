"""The rules without I/O: ids, validation, idempotency, cursors, receipts, membership."""

from __future__ import annotations

import ast
import math
import subprocess
import sys
from pathlib import Path

import pytest

import chatdesign.chat.core as core
from chatdesign.chat.core import (
    MAX_CONTENT_CHARS,
    MAX_SEQUENCE,
    SNOWFLAKE_EPOCH_MS,
    Conversation,
    ConversationPage,
    ConversationSummary,
    IdempotencyRecord,
    Message,
    SnowflakeGenerator,
    SyncResult,
    advance_delivery,
    advance_receipt,
    check_can_add_member,
    check_can_remove_member,
    direct_pair,
    group_members,
    history_window,
    is_conversation_id,
    is_retry,
    message_time,
    messages_frame,
    pack_snowflake,
    page_request,
    preview,
    send_fingerprint,
    sync_start,
    unpack_snowflake,
    validate_attachment_ids,
    validate_client_message_id,
    validate_content,
    validate_positions,
    validate_title,
    validate_user_id,
)
from chatdesign.chat.errors import (
    ChatError,
    Forbidden,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
)

FORBIDDEN_IMPORTS = {"sqlite3", "asyncio", "websockets", "socket", "time", "random"}


@pytest.mark.parametrize("module", ["core", "retention", "errors", "replication"])
def test_rule_modules_import_no_io(module: str) -> None:
    source = Path(core.__file__).with_name(f"{module}.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN_IMPORTS


def test_importing_the_core_loads_no_io_module() -> None:
    # Stand in an empty package for chatdesign.chat (its __init__ imports the SQLite store),
    # then import the rule modules alone and see what they pulled in.
    code = (
        "import sys, types, chatdesign; from pathlib import Path; "
        "package = types.ModuleType('chatdesign.chat'); "
        "package.__path__ = [str(Path(chatdesign.__file__).parent / 'chat')]; "
        "sys.modules['chatdesign.chat'] = package; "
        "import chatdesign.chat.core, chatdesign.chat.retention, chatdesign.chat.replication; "
        "print(sorted(m for m in ('sqlite3', 'asyncio', 'websockets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- snowflakes --------------------------------------------------------------------------------


def test_snowflake_round_trip() -> None:
    packed = pack_snowflake(SNOWFLAKE_EPOCH_MS + 123_456, 7, 42)
    parts = unpack_snowflake(packed)
    assert (parts.unix_ms, parts.worker_id, parts.sequence) == (SNOWFLAKE_EPOCH_MS + 123_456, 7, 42)


def test_snowflakes_sort_by_time_across_workers() -> None:
    early = pack_snowflake(SNOWFLAKE_EPOCH_MS + 1000, 1023, MAX_SEQUENCE)
    late = pack_snowflake(SNOWFLAKE_EPOCH_MS + 1001, 0, 0)
    assert early < late


@pytest.mark.parametrize(
    ("unix_ms", "worker", "sequence"),
    [(SNOWFLAKE_EPOCH_MS - 1, 0, 0), (SNOWFLAKE_EPOCH_MS, 1024, 0), (SNOWFLAKE_EPOCH_MS, 0, 4096)],
)
def test_snowflake_fields_out_of_range(unix_ms: int, worker: int, sequence: int) -> None:
    with pytest.raises(ValueError):
        pack_snowflake(unix_ms, worker, sequence)


def test_unpack_rejects_negative() -> None:
    with pytest.raises(ValueError, match="not a snowflake"):
        unpack_snowflake(-1)


def test_generator_is_strictly_increasing_within_one_millisecond() -> None:
    ids = SnowflakeGenerator(3)
    made = [ids.next_id(1_750_000_000.0) for _ in range(10)]
    assert made == sorted(made) and len(set(made)) == 10
    assert [unpack_snowflake(i).sequence for i in made] == list(range(10))
    assert {unpack_snowflake(i).worker_id for i in made} == {3}


def test_generator_survives_clock_going_backwards() -> None:
    ids = SnowflakeGenerator()
    first = ids.next_id(1_750_000_010.0)
    second = ids.next_id(1_750_000_000.0)  # an NTP step back by 10 s
    assert second > first
    assert unpack_snowflake(second).unix_ms == unpack_snowflake(first).unix_ms


def test_generator_borrows_next_millisecond_when_sequence_runs_out() -> None:
    ids = SnowflakeGenerator()
    made = [ids.next_id(1_750_000_000.0) for _ in range(MAX_SEQUENCE + 2)]
    assert len(set(made)) == len(made)
    assert unpack_snowflake(made[-1]).unix_ms == unpack_snowflake(made[0]).unix_ms + 1


def test_generator_continues_after_last_id() -> None:
    last = SnowflakeGenerator().next_id(1_750_000_100.0)
    restarted = SnowflakeGenerator(last_id=last)
    assert restarted.next_id(1_750_000_000.0) > last


@pytest.mark.parametrize("worker", [-1, 1024, True, 1.5])
def test_generator_rejects_bad_worker(worker: object) -> None:
    with pytest.raises(ValueError, match="worker_id"):
        SnowflakeGenerator(worker)  # type: ignore[arg-type]


@pytest.mark.parametrize("now", [math.nan, math.inf, -1.0, "now"])
def test_generator_rejects_bad_time(now: object) -> None:
    with pytest.raises(ValueError, match="now"):
        SnowflakeGenerator().next_id(now)  # type: ignore[arg-type]


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("user_id", ["alice", "a", "A.b-c_9", "x" * 64])
def test_valid_user_ids(user_id: str) -> None:
    assert validate_user_id(user_id) == user_id


@pytest.mark.parametrize("user_id", ["", "x" * 65, "a b", "g:1", "ä", None, 5])
def test_invalid_user_ids(user_id: object) -> None:
    with pytest.raises(InvalidRequest, match="user_id must be"):
        validate_user_id(user_id)


def test_content_rules() -> None:
    assert validate_content("hi\nthere\t!", ()) == "hi\nthere\t!"
    assert validate_content("", ("a" * 64,)) == ""
    with pytest.raises(InvalidRequest, match="must not be empty"):
        validate_content("", ())
    with pytest.raises(InvalidRequest, match="must not be empty"):
        validate_content("  \n", ())
    with pytest.raises(InvalidRequest, match="limit is 100,000"):
        validate_content("x" * (MAX_CONTENT_CHARS + 1), ())
    assert len(validate_content("x" * MAX_CONTENT_CHARS, ())) == MAX_CONTENT_CHARS
    with pytest.raises(InvalidRequest, match="lone surrogate"):
        validate_content("bad \ud800", ())
    with pytest.raises(InvalidRequest, match="control character"):
        validate_content("bell\x07", ())
    with pytest.raises(InvalidRequest, match="must be text"):
        validate_content(b"bytes", ())


def test_client_message_id_rules() -> None:
    assert validate_client_message_id("k-1") == "k-1"
    for bad in ("", "x" * 129, 7):
        with pytest.raises(InvalidRequest, match="client_message_id"):
            validate_client_message_id(bad)


def test_attachment_id_rules() -> None:
    good = "a" * 64
    assert validate_attachment_ids([good]) == (good,)
    with pytest.raises(InvalidRequest, match="not an attachment id"):
        validate_attachment_ids(["../etc/passwd"])
    with pytest.raises(InvalidRequest, match="listed twice"):
        validate_attachment_ids([good, good])
    with pytest.raises(InvalidRequest, match="at most 10"):
        validate_attachment_ids([f"{i:064x}" for i in range(11)])
    with pytest.raises(InvalidRequest, match="sequence"):
        validate_attachment_ids(good)


def test_title_rules() -> None:
    assert validate_title("Team") == "Team"
    with pytest.raises(InvalidRequest, match="blank"):
        validate_title("   ")
    with pytest.raises(InvalidRequest, match="limit is 200"):
        validate_title("t" * 201)


# --- conversations and membership ---------------------------------------------------------------


def test_direct_pair_is_symmetric_and_refuses_self() -> None:
    assert direct_pair("bob", "alice") == direct_pair("alice", "bob") == ("alice", "bob")
    with pytest.raises(InvalidRequest, match="themselves"):
        direct_pair("alice", "alice")


def test_conversation_ids_are_recognised() -> None:
    assert is_conversation_id("g:12") and is_conversation_id("d:3")
    assert not is_conversation_id("alice") and not is_conversation_id("g:")


def test_group_members_put_creator_first_and_drop_repeats() -> None:
    assert group_members("alice", ["bob", "alice", "bob", "carol"], 100) == ("alice", "bob", "carol")


def test_group_members_limit_counts_the_creator() -> None:
    others = [f"u{i}" for i in range(99)]
    assert len(group_members("alice", others, 100)) == 100
    with pytest.raises(InvalidRequest, match=r"at most 100 members.*101"):
        group_members("alice", [*others, "extra"], 100)
    with pytest.raises(InvalidRequest, match="list of user ids"):
        group_members("alice", "bob", 100)


GROUP = Conversation("g:1", "group", "team", "alice", 0.0)
DIRECT = Conversation("d:2", "direct", "a & b", "alice", 0.0)


def test_add_member_rules() -> None:
    check_can_add_member(GROUP, True, False, 3, 100)
    with pytest.raises(InvalidRequest, match="groups only"):
        check_can_add_member(DIRECT, True, False, 2, 100)
    with pytest.raises(Forbidden, match="only members"):
        check_can_add_member(GROUP, False, False, 3, 100)
    with pytest.raises(InvalidRequest, match="already a member"):
        check_can_add_member(GROUP, True, True, 3, 100)
    with pytest.raises(InvalidRequest, match="is full"):
        check_can_add_member(GROUP, True, False, 100, 100)


def test_remove_member_rules() -> None:
    check_can_remove_member(GROUP, "bob", "bob", True)  # leaving
    check_can_remove_member(GROUP, "alice", "bob", True)  # creator removes
    with pytest.raises(Forbidden, match="only the creator"):
        check_can_remove_member(GROUP, "bob", "carol", True)
    with pytest.raises(InvalidRequest, match="not a member"):
        check_can_remove_member(GROUP, "alice", "dave", False)
    with pytest.raises(InvalidRequest, match="groups only"):
        check_can_remove_member(DIRECT, "alice", "alice", True)


# --- sending ------------------------------------------------------------------------------------


def test_fingerprint_separates_fields() -> None:
    assert send_fingerprint("bob", "ab", ()) != send_fingerprint("bob", "a", ("b",))
    assert send_fingerprint("bob", "hi", ()) == send_fingerprint("bob", "hi", ())
    assert send_fingerprint("bob", "hi", ()) != send_fingerprint("carol", "hi", ())


def test_idempotency_decision() -> None:
    record = IdempotencyRecord("alice", "k1", "d:1", 4, send_fingerprint("bob", "hi", ()))
    assert is_retry(None, "anything") is False
    assert is_retry(record, send_fingerprint("bob", "hi", ())) is True
    with pytest.raises(IdempotencyConflict, match="'k1' was already used by alice"):
        is_retry(record, send_fingerprint("bob", "hello", ()))


def test_message_time_never_goes_back() -> None:
    assert message_time(100.0, 90.0) == 100.0
    assert message_time(80.0, 90.0) == 90.0


def test_message_value_checks_itself() -> None:
    with pytest.raises(ValueError, match="seq starts at 1"):
        Message(1, "d:1", 0, "alice", "hi", 0.0, "k")
    with pytest.raises(ValueError, match="created_at"):
        Message(1, "d:1", 1, "alice", "hi", math.nan, "k")
    message = Message(1, "d:1", 3, "alice", "x" * 40, 0.0, "k", cold=True)
    assert repr(message).startswith("Message(d:1#3 from alice: 'xxx") and "cold" in repr(message)
    frame = messages_frame([message])
    assert list(frame["seq"]) == [3] and bool(frame["cold"].iloc[0])
    assert list(messages_frame([]).columns) == list(frame.columns)


# --- reading ------------------------------------------------------------------------------------


def test_history_window_defaults_to_newest_first() -> None:
    window = history_window(None, None, 50)
    assert window.newest_first and window.before_seq is None and window.after_seq == 0


def test_history_window_after_is_oldest_first() -> None:
    window = history_window(None, 7, 10)
    assert not window.newest_first and window.after_seq == 7


@pytest.mark.parametrize(
    ("before", "after", "limit", "match"),
    [(5, 3, 10, "not both"), (None, None, 0, "limit must be 1..100"),
     (None, None, 101, "limit must be 1..100"), (0, None, 10, "before_seq must be >= 1"),
     (None, -1, 10, "after_seq must be >= 0"), (None, None, 2.5, "whole number")],
)
def test_history_window_errors(before: object, after: object, limit: object, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        history_window(before, after, limit)


def test_page_request() -> None:
    assert page_request(2, 10, None, 500.0) == (20, 10, 500.0)
    assert page_request(0, 5, 400.0, 500.0) == (0, 5, 400.0)
    with pytest.raises(InvalidRequest, match="page_number"):
        page_request(-1, 10, None, 500.0)
    with pytest.raises(InvalidRequest, match=r"page_size must be 1\.\.100"):
        page_request(0, 0, None, 500.0)
    with pytest.raises(InvalidRequest, match="in the future"):
        page_request(0, 10, 501.0, 500.0)
    with pytest.raises(InvalidRequest, match="last_updated_timestamp"):
        page_request(0, 10, "yesterday", 500.0)


def test_preview_is_one_short_line() -> None:
    assert preview("a\n b") == "a b"
    long = preview("w" * 200)
    assert long is not None and len(long) == 80 and long.endswith("…")
    assert preview(None) is None


def test_conversation_page_values() -> None:
    item = ConversationSummary("d:1", "direct", "a & b", 5.0, 3, "bob", "hi", 2)
    page = ConversationPage((item,), 0, 1, True, 9.0)
    assert "d:1" in repr(page)
    assert page.to_frame()["unread_count"].tolist() == [2]
    with pytest.raises(ValueError, match="page_size"):
        ConversationPage((item, item), 0, 1, False, 9.0)
    with pytest.raises(ValueError, match="unread_count"):
        ConversationSummary("d:1", "direct", "t", 5.0, 3, None, None, -1)


# --- receipts and devices -----------------------------------------------------------------------


def test_receipt_never_moves_backwards() -> None:
    assert advance_receipt(5, 3, 10) == 5
    assert advance_receipt(5, 8, 10) == 8
    with pytest.raises(InvalidRequest, match="beyond the conversation's last message"):
        advance_receipt(5, 11, 10)
    with pytest.raises(InvalidRequest, match="up_to_seq"):
        advance_receipt(0, 0, 10)


def test_delivery_advances_only_through_consecutive_seqs() -> None:
    assert advance_delivery(3, [4, 5]) == 5
    assert advance_delivery(3, [6, 7]) == 3  # 4 and 5 have not reached the device
    assert advance_delivery(3, [5, 4, 2]) == 5


def test_sync_start_prefers_what_the_device_says() -> None:
    assert sync_start(None, 7) == 7
    assert sync_start(2, 7) == 2


def test_positions_validation() -> None:
    assert validate_positions({"d:1": 3}) == {"d:1": 3}
    with pytest.raises(InvalidRequest, match="not a conversation id"):
        validate_positions({"alice": 3})
    with pytest.raises(InvalidRequest, match=">= 0"):
        validate_positions({"d:1": -1})
    with pytest.raises(InvalidRequest, match="dict"):
        validate_positions([("d:1", 3)])


def test_sync_result_checks_order() -> None:
    a = Message(1, "d:1", 1, "alice", "a", 0.0, "k1")
    b = Message(2, "d:1", 2, "alice", "b", 0.0, "k2")
    result = SyncResult("bob", "phone", {"d:1": (a, b)})
    assert result.message_count == 2 and "d:1: 2" in repr(result)
    assert result.to_frame()["seq"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="increasing seq"):
        SyncResult("bob", "phone", {"d:1": (b, a)})


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "code"),
    [(NotFound, "not_found"), (Forbidden, "forbidden"), (InvalidRequest, "invalid_request"),
     (IdempotencyConflict, "idempotency_conflict")],
)
def test_errors_carry_codes(kind: type[ChatError], code: str) -> None:
    error = kind("what went wrong")
    assert isinstance(error, ChatError)
    assert error.code == code and str(error) == "what went wrong"
    assert repr(error) == f"{kind.__name__}(code={code!r}, message='what went wrong')"
