"""Collect: what to fetch, the node script, placement, manifest, transport, S3."""
