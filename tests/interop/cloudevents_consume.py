"""Reads the event of a topic whose `correlationid` is RUN with the CloudEvents SDK's own
readers: `from_http` on the headers and data of a NATS JetStream message, or the SDK's Kafka
binding (`from_binary`) on a record read with kafka-python. Prints one JSON object: the
attributes, and the data as hex.

usage: cloudevents_consume.py nats|kafka URL TOPIC RUN
"""

import asyncio
import json
import sys

from cloudevents.http import from_http
from cloudevents.kafka import KafkaMessage
from cloudevents.kafka import from_binary as kafka_from_binary


def keep_bytes(data):
    return data


def found(ce, run):
    """Prints `ce` if it is the run's event, and says whether it was."""
    if ce.get("correlationid") != run:
        return False
    print(json.dumps({"attributes": dict(ce.get_attributes()), "data": bytes(ce.data).hex()}, default=str))
    return True


async def from_nats(url, topic, run):
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(topic, ordered_consumer=True, deliver_policy=nats.js.api.DeliverPolicy.ALL)
        while True:
            msg = await sub.next_msg(timeout=10)
            if found(from_http(dict(msg.headers), msg.data, data_unmarshaller=keep_bytes), run):
                return
    finally:
        await nc.close()


def from_kafka(brokers, topic, run):
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=brokers.split(","),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=30000,
    )
    try:
        for record in consumer:
            headers = {name: value for name, value in record.headers}
            message = KafkaMessage(headers=headers, key=record.key, value=record.value)
            if found(kafka_from_binary(message, data_unmarshaller=keep_bytes), run):
                return
        sys.exit("no record of the run within 30 s")
    finally:
        consumer.close()


if __name__ == "__main__":
    broker, url, topic, run = sys.argv[1:5]
    if broker == "nats":
        asyncio.run(from_nats(url, topic, run))
    else:
        from_kafka(url, topic, run)
