"""Publishes one event as a service built on the CloudEvents SDK would, with the SDK's own
conversions: to NATS JetStream (the HTTP conversion's `ce-` headers, as the NATS binding has
them) or to Kafka (the SDK's Kafka binding), with kafka-python.

usage: cloudevents_produce.py nats|kafka URL TOPIC TYPE SCHEMA CASE RUN

CASE is one of
  binary             protobuf data, binary mode, with `dataschema`
  binary-no-schema   the same without `dataschema`, as most SDK producers write
  structured-json    JSON data in a structured-mode document
  binary-json        JSON data, binary mode, without `dataschema`
  wrong-schema       protobuf data whose `dataschema` names another message

The event's data holds RUN as its order id (field 1, `orderId` in JSON). Prints the event id.
"""

import asyncio
import sys

from cloudevents.http import CloudEvent
from cloudevents.http import to_binary as http_binary
from cloudevents.http import to_structured as http_structured
from cloudevents.kafka import to_binary as kafka_binary
from cloudevents.kafka import to_structured as kafka_structured


def protobuf(order_id):
    """The message `{order_id}`: field 1, length-delimited (tag 0x0a), as protobuf writes it."""
    text = order_id.encode()
    assert len(text) < 128, "one length byte"
    return bytes([0x0A, len(text)]) + text


def event(event_type, schema, case, run):
    attributes = {"type": event_type, "source": "urn:python:cloudevents-sdk", "subject": case}
    if case in ("binary", "binary-no-schema", "wrong-schema"):
        attributes["datacontenttype"] = "application/protobuf"
        if case == "binary":
            attributes["dataschema"] = "proto:" + schema
        if case == "wrong-schema":
            attributes["dataschema"] = "proto:com.example.billing.v1.Invoice"
        return CloudEvent(attributes, protobuf(run)), False
    attributes["datacontenttype"] = "application/json"
    return CloudEvent(attributes, {"orderId": run}), case == "structured-json"


def keep_bytes(data):
    return data


async def to_nats(url, topic, ce, structured):
    import nats

    if structured:
        headers, body = http_structured(ce)
    else:
        headers, body = http_binary(ce, data_marshaller=None if isinstance(ce.data, dict) else keep_bytes)
    nc = await nats.connect(url)
    try:
        await nc.jetstream().publish(topic, body, headers=dict(headers), timeout=10)
    finally:
        await nc.close()


def to_kafka(brokers, topic, ce, structured):
    from kafka import KafkaProducer

    if structured:
        message = kafka_structured(ce)
    else:
        message = kafka_binary(ce, data_marshaller=None if isinstance(ce.data, dict) else keep_bytes)
    producer = KafkaProducer(bootstrap_servers=brokers.split(","))
    try:
        producer.send(
            topic,
            value=message.value,
            key=message.key,
            headers=list(message.headers.items()),
        ).get(timeout=30)
    finally:
        producer.close()


def main(broker, url, topic, event_type, schema, case, run):
    ce, structured = event(event_type, schema, case, run)
    if broker == "nats":
        asyncio.run(to_nats(url, topic, ce, structured))
    elif broker == "kafka":
        to_kafka(url, topic, ce, structured)
    else:
        sys.exit(f"unknown broker {broker}")
    print(ce["id"])


if __name__ == "__main__":
    main(*sys.argv[1:8])
