"""Refused inputs of provider ec2 (`vca provision --provider ec2`): each ends in one line, changes
nothing on this machine and makes nothing in EC2. Proved one by one in tests/e2e/test_ec2.py and
tests/unit/providers/ec2/test_ec2_settings.py and tests/unit/test_spec.py as well."""

from __future__ import annotations

from . import Case

CASES: list[Case] = [
    Case(
        id="ec2-lifetime-beyond-a-year",
        argv=("-c", "badlife", "provision", "1", "--provider", "ec2", "--image", "ami-04681a1dbd79675a5",
              "--ssh-cidr", "10.0.0.0/8", "--lifetime", "99999999999d"),
        words="lifetime '99999999999d' is longer than 365 days",
        needs="aws",
        doc="`provision --provider ec2 --lifetime 99999999999d` once printed \"launching 1 EC2 instance\" and "
            "then a traceback; lifetimes over 365 days are now refused before anything is said or made.",
    ),
    Case(
        id="ec2-endpoint-not-a-url",
        argv=("-c", "badurl", "provision", "1", "--provider", "ec2", "--image", "ami-04681a1dbd79675a5",
              "--ssh-cidr", "10.0.0.0/8"),
        words="the EC2 endpoint 'notaurl' is not a URL",
        needs="aws",
        env={"AWS_ENDPOINT_URL": "notaurl"},
        doc="`AWS_ENDPOINT_URL=notaurl vca provision --provider ec2` was a botocore traceback; now one line "
            "names the endpoint that is not a URL.",
    ),
    Case(
        id="ec2-spec-binary",
        argv=("-c", "badspec", "provision", "1", "--provider", "ec2", "--spec", "{tmp}/bin.yml"),
        words="is not a YAML text file",
        files={"bin.yml": "provider: ec2\x00\x01\x02\x03\xff\xfe\n"},
        doc="A binary `--spec` file (random bytes were a UnicodeDecodeError traceback) is refused as not a "
            "YAML text file.",
    ),
    Case(
        id="ec2-spec-dev-zero",
        argv=("-c", "badspec", "provision", "1", "--provider", "ec2", "--spec", "/dev/zero"),
        words="spec file /dev/zero is not a regular file",
        doc="`--spec /dev/zero` read until memory ran out; spec files must be regular files.",
    ),
    Case(
        id="ec2-spec-too-large",
        argv=("-c", "badspec", "provision", "1", "--provider", "ec2", "--spec", "{tmp}/big.yml"),
        words="is larger than 1 MiB",
        files={"big.yml": "# padding\n" * 120_000},
        doc="A `--spec` file over 1 MiB is refused after reading at most 1 MiB and one byte of it.",
    ),
]
