"""The setup stage: Ansible roles applied to nodes per node role, between "the nodes accept SSH" and
"a release is injected". Storage, toolchain and HA roles plug in here.

    settings.py   which roles each node role gets (the cluster record's ``setup`` mapping), checked
    stage.py      running playbooks/setup.yml on the nodes that get roles; nothing when none do
    ha_membership.py  ha_cluster, never applied to part of the cluster: one run on every HA node

It knows nothing about clouds: it sees nodes, their roles and the cluster's inventory.
"""
