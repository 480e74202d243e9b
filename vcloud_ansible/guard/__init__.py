"""Cost guards that act on the nodes themselves, with the control machine gone: idle stop, expiry with
vca-checkpoint, spot interruption notices (roles/package/files/vca-guard, installed on every node by
the membership push and by ``vca guard``), and ``vca gc`` for what is left in the cloud.
"""
