#!/usr/bin/env bash
# Keep an anchor of the event log (the head of its hash chain, from `eventstore verify`) in the
# archive bucket, where Object Lock keeps it from being deleted or overwritten: an anchor kept
# outside the database is what shows a log cut short or recomputed whole. Run it on a schedule
# (a CI job, cron on the bastion that runs the migrations) with the operator's credentials.
#
#   infra/keep-anchor.sh ARCHIVE_BUCKET [eventstore global options, e.g. --db URL]
#
# A broken chain keeps nothing and exits 1 (verify names the first bad position).
set -euo pipefail

archive=${1:?usage: infra/keep-anchor.sh ARCHIVE_BUCKET [--db URL]}
shift
EVENTSTORE=${EVENTSTORE:-eventstore}
AWS=${AWS:-aws}

report=$("$EVENTSTORE" "$@" verify --format json)
key="anchors/$(date -u +%FT%TZ).json"
# The AWS CLI sends a checksum with the upload, which Object Lock requires.
printf '%s\n' "$report" | "$AWS" s3 cp - "s3://$archive/$key" --content-type application/json
echo "kept s3://$archive/$key"
