"""HA services: the ha_cluster role's place in vca (membership kept in step) and `vca service`.

    membership.py   which nodes form the HA cluster; one run of the role on all of them after a change
    spec.py         service names, commands (PIDFILE), the CIB XML of a service, ServiceInfo
    ops.py          add, list, move, remove, logs: commands run over SSH on a full member

The cluster itself is the role's (roles/ha_cluster): corosync + pacemaker on the first
ha_cluster_full_members nodes, pacemaker_remote on the others, services as ocf:vca:service resources.
"""
