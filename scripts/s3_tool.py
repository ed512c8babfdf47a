#!/usr/bin/env python3
"""A small S3 client for the tests (boto3, which comes with moto): make a bucket, list keys, read an object.

Usage: s3_tool.py ENDPOINT mkbucket BUCKET
       s3_tool.py ENDPOINT ls BUCKET [PREFIX]      one line per object: KEY<TAB>SIZE, in key order
       s3_tool.py ENDPOINT get BUCKET KEY         the object's bytes on standard output

Credentials test/test, region us-east-1, path-style addressing (what a local moto server takes).
"""
import sys

import boto3
from botocore.config import Config


def client(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test", config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    endpoint, command, bucket = sys.argv[1:4]
    s3 = client(endpoint)
    if command == "mkbucket":
        s3.create_bucket(Bucket=bucket)
    elif command == "ls":
        prefix = sys.argv[4] if len(sys.argv) > 4 else ""
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                print(f"{o['Key']}\t{o['Size']}")
    elif command == "get":
        sys.stdout.buffer.write(s3.get_object(Bucket=bucket, Key=sys.argv[4])["Body"].read())
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
