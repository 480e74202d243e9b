"""Job arrays: a CSV of instance_type,command rows, one node per row, each node autonomous once started
(runner.py), its results verified in S3 before it removes itself.

    spec.py            the CSV, read and checked whole (line numbers in every error)
    instance_types.py  the instance types the lab checks rows against
    store.py           the array's layout in S3, presigned uploads for the nodes
    status.py          a job's state from S3 and the provider's listing
    array.py           JobArray: run, follow (wait), retry, status, fetch, cancel
    runner.py          the node side (Python standard library only)
"""

from .array import ArrayStatus, FetchResult, JobArray, check_csv, list_arrays

__all__ = ["ArrayStatus", "FetchResult", "JobArray", "check_csv", "list_arrays"]
