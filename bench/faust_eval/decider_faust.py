"""faust-streaming decider: cmds -> (Table counter, changelog) -> events + replies.

Env: APP_ID, CMD_TOPIC, EVT_TOPIC, REPLY_TOPIC, WORKER, REPORT_EVERY, DEDUPE (1 = also keep a
`seen` Table of command ids and skip seen commands).
Prints 'FIRST_MSG <unix_ts>' on first processed message and 'PROCESSED <n> <unix_ts>' every REPORT_EVERY.
"""
import os, sys, time, json
import faust

APP_ID = os.environ.get("APP_ID", "decider-eval")
WORKER = os.environ.get("WORKER", "w1")
EVERY = int(os.environ.get("REPORT_EVERY", "10000"))
DEDUPE = os.environ.get("DEDUPE") == "1"
USE_TABLE = os.environ.get("USE_TABLE", "1") == "1"  # profiling knob
USE_SEND = os.environ.get("USE_SEND", "1") == "1"  # profiling knob

app = faust.App(
    APP_ID,
    broker="kafka://127.0.0.1:29092",
    store="memory://",
    web_enabled=False,
    topic_partitions=4,
    topic_replication_factor=1,
    processing_guarantee="at_least_once",
    key_serializer="raw",
    value_serializer="json",
)
cmd_topic = app.topic(os.environ.get("CMD_TOPIC", "cmds"), key_type=bytes, value_serializer="json", partitions=4)
evt_topic = app.topic(os.environ.get("EVT_TOPIC", "events"), partitions=4)
reply_topic = app.topic(os.environ.get("REPLY_TOPIC", "replies"), partitions=4)
counts = app.Table("agg_count", default=int, partitions=4)
seen = app.Table("seen_cmds", default=bool, partitions=4) if DEDUPE else None

_n = 0


def decide(cmd, state):
    """pure: returns list of events."""
    return [{"type": "Incremented", "cmd_id": cmd["cmd_id"], "agg": cmd["agg"], "seq": state + 1}]


@app.agent(cmd_topic)
async def decider(stream):
    global _n
    async for key, cmd in stream.items():
        agg = cmd["agg"]
        if DEDUPE and seen[cmd["cmd_id"]]:
            await reply_topic.send(key=agg, value={"cmd_id": cmd["cmd_id"], "dup": True})
            continue
        state = counts[agg] if USE_TABLE else 0
        events = decide(cmd, state)
        for e in events:
            e["w"] = WORKER
            e["ts"] = time.time()
            if USE_SEND:
                await evt_topic.send(key=agg, value=e)
        if USE_TABLE:
            counts[agg] = state + len(events)
        if DEDUPE:
            seen[cmd["cmd_id"]] = True
        if USE_SEND:
            await reply_topic.send(key=agg, value={"cmd_id": cmd["cmd_id"], "ok": True})
        _n += 1
        if _n == 1:
            print(f"FIRST_MSG {time.time():.3f}", file=sys.stderr, flush=True)
        if _n % EVERY == 0:
            print(f"PROCESSED {_n} {time.time():.3f}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    app.main()
