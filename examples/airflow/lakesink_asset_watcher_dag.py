"""Run a DAG for every lakesink completion event (Airflow 3 asset watcher).

lakesink publishes one event per hour and revision to markers.kafka_topic,
keyed by stream: the manifest plus asset_uri and partition_key. The
MessageQueueTrigger reads that topic in the triggerer; each accepted event
becomes an asset event and triggers the DAG, whose task gets the event in
triggering_asset_events. Events are at least once: deduplicate on
(stream, hour, revision), e.g. with a delete-then-insert load per hour.
"""

from __future__ import annotations

import json

from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import DAG, Asset, AssetWatcher, task

STREAM = "clickstream"


def accept_clickstream(message):
    """Keep only this stream's events (the topic carries every stream)."""
    event = json.loads(message.value())
    if event.get("stream") != STREAM:
        return None
    return event


trigger = MessageQueueTrigger(
    scheme="kafka",
    topics=["lakesink-hours"],
    apply_function="lakesink_asset_watcher_dag.accept_clickstream",
    kafka_config_id="lakesink_kafka",  # connection with bootstrap.servers and group.id
)

clickstream_hours = Asset(
    "s3://lake/events/clickstream",  # the event's asset_uri
    name="lakesink_clickstream",
    watchers=[AssetWatcher(name="lakesink_clickstream_watcher", trigger=trigger)],
)

with DAG(dag_id="lakesink_clickstream_on_event", schedule=[clickstream_hours], tags=["lakesink"]):

    @task
    def load_hour(*, triggering_asset_events=None):
        for event in triggering_asset_events[clickstream_hours]:
            payload = event.extra.get("payload", event.extra)
            files = [f["path"] for f in payload.get("files", [])]
            print(
                f"{payload.get('stream')} hour {payload.get('partition_key')} revision {payload.get('revision')}: "
                f"{len(files)} files, {payload.get('records')} records"
            )

    load_hour()
