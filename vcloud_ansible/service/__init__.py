"""HA services: `vca service` on the cluster the ha_cluster role forms (its membership is kept in step
by the setup stage: setup/ha_membership.py).

    spec.py         service names, commands (PIDFILE), the CIB XML of a service, ServiceInfo
    ops.py          add, list, move, remove, logs: commands run over SSH on a full member

The cluster itself is the role's (roles/ha_cluster): corosync + pacemaker on the first
ha_cluster_full_members nodes, pacemaker_remote on the others, services as ocf:vca:service resources.
"""
