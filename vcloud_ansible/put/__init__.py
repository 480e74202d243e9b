"""put: send a local file or folder to the nodes (the old StarCluster ``put``). See vcloud_ansible.put.run."""
