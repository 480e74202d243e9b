"""Cluster membership on the nodes: node-to-node SSH with a cluster-internal key, the members' host
keys, names and the MPI hostfile, pushed to every live node when the cluster changes (issue 13)."""
