"""Storage and first-boot set-up of nodes: the node-side state of the init script (status, logs) and
the handling of the script file. The roles themselves live in roles/scratch, roles/s3fs and
roles/init_script and plug into the setup stage.

    init_script.py   --init-script FILE: checked, kept with the cluster, its state on each node
"""
