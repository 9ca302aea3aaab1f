"""Read one complete hour of lakesink's Iceberg table (Airflow 3 asset watcher).

A stream with a `table:` block commits its files to an Apache Iceberg table.
Its completion events (markers.kafka_topic) then name the table, the snapshot
that made the hour complete (snapshot_id) and the hour's partition value
(table_partition). This DAG runs for each event and reads exactly that hour,
at exactly that snapshot, with PyIceberg: later snapshots (the next hours,
late data) do not change what it reads. A revision (late data) is a new
event with a newer snapshot: the task replaces the hour's rows downstream.

Needs `pip install "pyiceberg[pyarrow]"`, and the catalog's settings in the
Airflow worker's PyIceberg configuration (~/.pyiceberg.yaml or PYICEBERG_*
environment), e.g. for the REST catalog lakesink uses:

    catalog:
      lake:
        uri: https://catalog.example.com/api/catalog
        token: ...
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import DAG, Asset, AssetWatcher, task

STREAM = "clickstream"
CATALOG = "lake"  # a catalog in the PyIceberg configuration


def accept_clickstream(message):
    """Keep this stream's events; every one of a table stream names its snapshot."""
    event = json.loads(message.value())
    if event.get("stream") != STREAM or "snapshot_id" not in event:
        return None
    return event


trigger = MessageQueueTrigger(
    scheme="kafka",
    topics=["lakesink-hours"],
    apply_function="lakesink_iceberg_hour_dag.accept_clickstream",
    kafka_config_id="lakesink_kafka",
)

clickstream_table = Asset(
    "iceberg://lake/clickstream",
    name="lakesink_clickstream_table",
    watchers=[AssetWatcher(name="lakesink_clickstream_table_watcher", trigger=trigger)],
)

with DAG(dag_id="lakesink_clickstream_table_hour", schedule=[clickstream_table], tags=["lakesink", "iceberg"]):

    @task
    def read_hour(*, triggering_asset_events=None):
        from pyiceberg.catalog import load_catalog
        from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

        catalog = load_catalog(CATALOG)
        for event in triggering_asset_events[clickstream_table]:
            payload = event.extra.get("payload", event.extra)
            table = catalog.load_table(payload["table"])
            start = datetime.fromisoformat(payload["hour"]).astimezone(timezone.utc)
            end = start + timedelta(hours=1)
            # The event time column is the source of the hour partition:
            # this filter prunes to the one partition, table_partition.
            rows = table.scan(
                row_filter=And(
                    GreaterThanOrEqual("ts", start.isoformat()),
                    LessThan("ts", end.isoformat()),
                ),
                snapshot_id=payload["snapshot_id"],
            ).to_arrow()
            if rows.num_rows != payload["records"]:
                raise ValueError(
                    f"{payload['table']} at snapshot {payload['snapshot_id']}: {rows.num_rows} rows "
                    f"for hour {payload['hour']}, the manifest lists {payload['records']}"
                )
            print(
                f"{payload['table']} hour {payload['hour']} (partition {payload['table_partition']}) "
                f"revision {payload['revision']}: {rows.num_rows} rows at snapshot {payload['snapshot_id']}"
            )

    read_hour()
