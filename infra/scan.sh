#!/usr/bin/env bash
# Lint and scan infra/template.yaml: cfn-lint (from the project's .venv) and checkov.
# checkov gets its own virtualenv (.venv-checkov): it pins boto3, packaging and networkx to
# versions older than the project uses. The test suite (tests/e2e/test_template.py) runs the
# same checkov once this script has created it.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VENV=${CHECKOV_VENV:-.venv-checkov}
CHECKOV_VERSION=${CHECKOV_VERSION:-3.3.30}
PYTHON=${PYTHON:-python3}

if [ ! -x "$CHECKOV_VENV/bin/checkov" ]; then
    "$PYTHON" -m venv "$CHECKOV_VENV"
    "$CHECKOV_VENV/bin/python" -m pip install -q "checkov==$CHECKOV_VERSION"
fi
if [ "${1:-}" = "--install-only" ]; then
    exit 0
fi

.venv/bin/cfn-lint infra/template.yaml
# --skip-download: no calls to the Prisma Cloud API; the checks are all local.
"$CHECKOV_VENV/bin/checkov" -f infra/template.yaml --framework cloudformation --skip-download --compact
