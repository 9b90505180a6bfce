#!/usr/bin/env python3
"""Writes tests/fixtures/longlamp/topic_writing.parquet from topic_writing.jsonl.

The layout follows the Hugging Face Parquet conversion of LongLaMP/LongLaMP
(columns input, output, profile as list<struct<...>>, plus the id column),
snappy-compressed like the datasets library writes it.
Requires pyarrow (pip install pyarrow). Run from the repository root:
    python3 scripts/make_longlamp_parquet.py
"""
import json
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq

root = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "longlamp"
rows = [json.loads(line) for line in (root / "topic_writing.jsonl").read_text().splitlines() if line.strip()]
schema = pa.schema(
    [
        ("author", pa.string()),
        ("input", pa.string()),
        ("output", pa.string()),
        ("profile", pa.list_(pa.struct([("summary", pa.string()), ("content", pa.string())]))),
    ]
)
table = pa.Table.from_pylist(rows, schema=schema)
pq.write_table(table, root / "topic_writing.parquet", compression="snappy")
print(f"wrote {len(rows)} rows to {root / 'topic_writing.parquet'}")
