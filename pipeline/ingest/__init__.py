"""Ingest: raw files of many formats → clean, dated, de-duplicated documents."""
