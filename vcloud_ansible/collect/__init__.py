"""Collect: bring result files back from the nodes (or from S3), verified, with a manifest.

Per node, one shell round trip (``node.sh``) resolves REMOTE on the node, lists every file with its
sha256 and makes ONE compressed tarball of the files the controller lacks. ``vca collect`` reads it from
the same ssh stream, right behind the listing; the Ansible action (playbooks/collect.yml) has it written
to a temporary file that it fetches over its open connection. On the controller the local ``tar``
unpacks it into an empty staging folder; vca takes from there exactly the regular files the node
listed, each checked against the node's sha256, and moves them into place under the overwrite rule,
never through a link below LOCAL, each with an entry in the manifest beside the results.

    run.py           the steps of one collect, shared by Cluster.collect (``vca collect``) and the
                     ``vca_collect`` action; the typed result
    remote_path.py   what to fetch: REMOTE as the node's shell reads it
    node_script.py   the node side: node.sh filled in per run, and the records it prints
    receive.py       the controller side for one node: check, verify, place
    layout.py        where files land locally, and writing them there safely
    manifest.py      the record beside the results
    outcome.py       one node's outcome
    checksum.py      sha256 of local files
    transport.py     how the script and archive travel: one ssh stream, or Ansible's connection
    s3.py            ``--from-s3``: what nodes wrote to S3
    errors.py        the collect errors
"""
