"""Reads the records of one topic with kafka-python, as a consumer written outside tidings would,
and prints those of one run as JSON lines: partition, key, headers and value (bytes in hex).

usage: read.py BOOTSTRAP TOPIC GROUP RUN COUNT

Joins consumer group GROUP from the oldest record, keeps the records whose `ce_correlationid`
header is RUN, commits by hand once COUNT of them are read, and exits non-zero when they do not
arrive within 60 seconds.
"""

import json
import sys

from kafka import KafkaConsumer


def main() -> int:
    bootstrap, topic, group, run, count = sys.argv[1:5] + [int(sys.argv[5])]
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=60_000,
    )
    read = 0
    for record in consumer:
        headers = {name: value.decode() for name, value in record.headers}
        if headers.get("ce_correlationid") != run:
            continue
        line = {
            "partition": record.partition,
            "key": record.key.decode() if record.key is not None else None,
            "headers": headers,
            "value": record.value.hex(),
        }
        print(json.dumps(line), flush=True)
        read += 1
        if read == count:
            break
    consumer.commit()
    consumer.close()
    if read < count:
        print(f"read {read} of {count} records within 60 s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
