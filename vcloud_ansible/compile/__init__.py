"""Remote compile: build a source folder on the cluster's dev node, bring the artifacts back.

    plan.py       the request, checked before anything is made; how the build runs (a package's own
                  vcloud-launch, --build, or detected from SConstruct / Makefile / CMakeLists.txt);
                  the node-side scripts (probe, source bookkeeping, build)
    send.py       the sources to the node: rsync over the cluster's ssh_config, only what changed
    artifacts.py  the artifacts back through the collect machinery (manifest, sha256), placed into
                  --out file by file with renames, and the inject-ready --package (temp + rename)
    run.py        the whole run: find or make the dev node (role dev, setup role toolchain), send,
                  build with the log streamed live, fetch, package, remove the node it made

`Cluster.compile(...)` and `vca compile` call run.compile_sources; playbooks/compile.yml does the same
on the node side with raw Ansible.
"""
