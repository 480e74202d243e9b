"""The shape of a cluster after it was made: removing nodes (by reference or the K highest-index idle
workers), resizing to a total, powering nodes off and on with their disks kept."""
