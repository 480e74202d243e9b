"""Refused inputs of `vca jobs run`: the job CSV is read and checked whole before anything is made, and
every error names the file and line. A quoted field holding a comma and a newline is accepted (CSV's own
rule): tests/unit/jobs/test_jobs_spec.py and the array of tests/e2e/test_jobs.py run such rows."""

from __future__ import annotations

from . import Case

RUN = ("jobs", "run", "{tmp}/jobs.csv", "--name", "arr", "--bucket", "results")

CASES: list[Case] = [
    Case("jobs-csv-missing-header", RUN, "jobs.csv:1: no header", files={"jobs.csv": "t3.micro,echo hi\n"},
         doc="A job CSV without the instance_type,command header is refused at line 1; nothing is made."),
    Case("jobs-csv-column-count", RUN, "jobs.csv:3: 3 fields, the header has 2",
         files={"jobs.csv": "instance_type,command\nt3.micro,echo a\nt3.micro,echo b, c\n"},
         doc="A row with more fields than the header (an unquoted comma) is refused with its line."),
    Case("jobs-csv-empty-command", RUN, "jobs.csv:2: empty command",
         files={"jobs.csv": "instance_type,command\nt3.micro,\n"},
         doc="A row with an empty command is refused with its line."),
    Case("jobs-csv-unknown-type", RUN, "jobs.csv:3: unknown instance type 't3.gigantic'",
         files={"jobs.csv": "instance_type,command\nt3.micro,true\nt3.gigantic,true\n"},
         doc="An instance type vca does not know is refused with its line (the lab records types; ec2 asks EC2)."),
    Case("jobs-csv-bad-env", RUN, "jobs.csv:2: env entry 'DEBUG' is not K=V",
         files={"jobs.csv": "instance_type,command,env\nt3.micro,true,MODE=fast;DEBUG\n"},
         doc="An env field that is not K=V;K=V is refused with its line."),
    Case("jobs-csv-empty-file", RUN, "jobs.csv:1: the job file is empty", files={"jobs.csv": ""},
         doc="An empty job file is refused."),
    Case("jobs-csv-unclosed-quote", RUN, "jobs.csv:2:",
         files={"jobs.csv": 'instance_type,command\nt3.micro,"echo open\n'},
         doc="A quoted field that is never closed is refused with the line it starts on."),
    Case("jobs-retry-on-exit-bad", (*RUN, "--retry-on-exit", "3,x"), "--retry-on-exit takes exit codes",
         files={"jobs.csv": "instance_type,command\nt3.micro,true\n"},
         doc="`--retry-on-exit` with something other than exit codes is refused."),
    Case("jobs-ec2-ssh-open-to-all", (*RUN, "--provider", "ec2", "--ssh-cidr", "0.0.0.0/0"),
         "--ssh-cidr 0.0.0.0/0 opens job nodes to the whole internet",
         files={"jobs.csv": "instance_type,command\nt3.micro,true\n"},
         doc="Job nodes on EC2 never let SSH in from the whole internet: `--ssh-cidr 0.0.0.0/0` (or ::/0) is "
             "refused before any AWS call."),
    Case("jobs-setup-missing", (*RUN, "--setup", "{tmp}/nosuch.sh"), "setup script",
         files={"jobs.csv": "instance_type,command\nt3.micro,true\n"},
         doc="A --setup script that does not exist is refused before anything is made."),
    Case("jobs-no-bucket", RUN, "no bucket s3://results", needs="aws",
         files={"jobs.csv": "instance_type,command\nt3.micro,true\n"},
         doc="A bucket that does not exist is refused before any node or record is made."),
    Case("jobs-status-unknown", ("jobs", "status", "nosuch"), "no job array 'nosuch' is known here",
         doc="`jobs status` of an array this machine did not start, without --bucket, is refused."),
]
