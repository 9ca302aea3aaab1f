"""Load each lakesink hour once its _SUCCESS manifest is in S3.

The deferrable S3KeySensor waits for the hour's marker; the load task reads
the manifest and loads exactly the files it lists (never "everything in the
folder": files the manifest does not list are orphans the finalizer removes).
A late record makes lakesink rewrite the manifest with revision + 1; clear
and rerun the hour's DAG run (or use the asset-watcher DAG, which is
triggered per revision) to reload it.
"""

from __future__ import annotations

import json

import pendulum
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk import dag, task

BUCKET = "lake"
PREFIX = "events/"  # storage.s3.prefix of the lakesink config
STREAM = "clickstream"
HOUR_PATH = STREAM + "/dt={{ data_interval_start.strftime('%Y-%m-%d') }}/hour={{ data_interval_start.strftime('%H') }}"


@dag(
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=True,
    max_active_runs=4,
    tags=["lakesink"],
)
def lakesink_hourly_load():
    wait = S3KeySensor(
        task_id="wait_for_success",
        bucket_name=BUCKET,
        bucket_key=PREFIX + HOUR_PATH + "/_SUCCESS",
        deferrable=True,  # waits in the triggerer, not in a worker slot
        poke_interval=60,
        timeout=6 * 3600,
    )

    @task
    def read_manifest(data_interval_start=None) -> dict:
        hour = data_interval_start
        key = f"{PREFIX}{STREAM}/dt={hour:%Y-%m-%d}/hour={hour:%H}/_SUCCESS"
        manifest = json.loads(S3Hook().read_key(key=key, bucket_name=BUCKET))
        if manifest["version"] != 1:
            raise ValueError(f"unsupported manifest version {manifest['version']}")
        return manifest

    @task
    def load(manifest: dict) -> int:
        files = [f"s3://{BUCKET}/{PREFIX}{f['path']}" for f in manifest["files"]]
        # Replace with the warehouse's load, e.g. COPY INTO ... FROM the listed files.
        # Delete-then-insert by (stream, hour) keeps reruns of later revisions exact.
        print(f"loading revision {manifest['revision']} of {manifest['hour']}: {len(files)} files, {manifest['records']} records")
        for f in files:
            print(f)
        return manifest["records"]

    wait >> load(read_manifest())


lakesink_hourly_load()
