"""Reaching nodes: SSH fan-out, the access files (inventory, ssh_config, known_hosts), S3."""
