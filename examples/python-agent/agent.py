"""A report agent with no AWS code of its own: boto3 finds its credentials itself.

Run it under tvm (README, "A Python agent under tvm exec"):

    AWS_ENDPOINT_URL_S3=http://127.0.0.1:8790 AWS_DEFAULT_REGION=us-east-1 \
      tvm exec --grant reports-read --token-file /tmp/tvm-token -- python3 examples/python-agent/agent.py

`tvm exec` gives it a loopback credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI), one lease
for all its calls, and revokes that lease when it exits. AWS_ENDPOINT_URL_S3 points boto3 at the
local S3 of `npm start`; deployed, leave it out.

`--leak FILE` is for the demo only: it writes the credentials boto3 holds to FILE (mode 0600) as
shell `export` lines, as a leak would copy them, to show they stop working once the agent exits.
"""
import sys

import boto3

s3 = boto3.client("s3")
report = s3.get_object(Bucket="reports", Key="analytics/q3.csv")["Body"].read().decode()
print(report, end="")

if len(sys.argv) == 3 and sys.argv[1] == "--leak":
    import os
    import shlex

    c = boto3.Session().get_credentials().get_frozen_credentials()
    fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for name, value in [("AWS_ACCESS_KEY_ID", c.access_key), ("AWS_SECRET_ACCESS_KEY", c.secret_key), ("AWS_SESSION_TOKEN", c.token)]:
            f.write(f"export {name}={shlex.quote(value)}\n")
