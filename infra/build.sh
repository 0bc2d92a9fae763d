#!/usr/bin/env bash
# Package the Lambda code (consumers, eventstore, migrations) with its runtime dependencies into
# one zip for both functions of infra/template.yaml:
#
#   infra/build.sh                 -> infra/dist/s3-eventstore-lambda.zip
#
# Dependencies are installed as Linux wheels for the Lambda runtime (python3.13, x86_64), never
# built here, so the package is the same whatever machine builds it (psycopg-binary included).
# Settings: PYTHON_VERSION (3.13), PLATFORM (manylinux2014_x86_64; manylinux2014_aarch64 for
# arm64 functions), OUT (the zip path), PYTHON (the interpreter running pip, default .venv's).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
PYTHON_VERSION=${PYTHON_VERSION:-3.13}
PLATFORM=${PLATFORM:-manylinux2014_x86_64}
OUT=${OUT:-infra/dist/s3-eventstore-lambda.zip}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. Our own code as a wheel (pure Python), so its dependencies come from pyproject.toml.
#    Built from a copy: setuptools would leave build/ and *.egg-info in the working tree.
mkdir -p "$work/src"
cp -r pyproject.toml README.md eventstore consumers migrations "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$work/wheel" "$work/src"
wheel=$(ls "$work"/wheel/s3_eventstore-*.whl)

# 2. The wheel and its dependencies (with the PostgreSQL driver) for the Lambda platform.
"$PYTHON" -m pip install --quiet --target "$work/package" \
    --platform "$PLATFORM" --implementation cp --python-version "$PYTHON_VERSION" \
    --only-binary=:all: --upgrade "${wheel}[postgres]"

# The command line's terminal libraries (Rich and what it pulls in) are never imported by the
# handlers (tests/unit/test_output.py checks the import path): left out, they keep the zip
# ~1.6 MB smaller.
rm -rf "$work"/package/{rich,pygments,markdown_it,mdurl} \
    "$work"/package/{rich,pygments,markdown_it_py,mdurl}-*.dist-info

# pip notes where it installed our wheel from (a temporary folder, so every build differed):
# not part of the package.
for info in "$work"/package/s3_eventstore-*.dist-info; do
    rm -f "$info/direct_url.json"
    sed -i '/direct_url\.json/d' "$info/RECORD"
done

# 3. Bytecode for the Lambda runtime's Python. /var/task is read-only, so without it every cold
#    start compiles every module it imports: measured with python3.13 on the unzipped package,
#    `import consumers.ingest` 200 -> 92 ms and the first invocation 650 -> 190 ms. Hash-based
#    and unchecked: nothing compares it with the sources' times (the zip fixes those to 1980),
#    and the same sources give the same bytes. It needs that Python's interpreter
#    (PYC_PYTHON, default python$PYTHON_VERSION on PATH); without one the zip still works.
find "$work/package" -name __pycache__ -prune -exec rm -rf {} +  # pip's, for this Python
PYC_PYTHON=${PYC_PYTHON:-$(command -v "python$PYTHON_VERSION" || true)}
if [ -n "$PYC_PYTHON" ] && "$PYC_PYTHON" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$PYTHON_VERSION'.split('.'))))"; then
    "$PYC_PYTHON" -m compileall -q -j 0 --invalidation-mode unchecked-hash \
        -s "$work/package" -p /var/task "$work/package" >/dev/null \
        || echo "warning: some modules did not compile for Python $PYTHON_VERSION; they compile at cold start" >&2
else
    echo "warning: no Python $PYTHON_VERSION interpreter (set PYC_PYTHON): the zip carries no bytecode, and each cold start compiles every module it imports" >&2
fi

# 4. A reproducible zip: sorted entries, fixed timestamps. The *.dist-info folders stay: entry
#    points (`eventstore.projections`) are read from them.
mkdir -p "$(dirname "$OUT")"
"$PYTHON" - "$work/package" "$OUT" <<'PY'
import os
import sys
import zipfile
from pathlib import Path

root, out = Path(sys.argv[1]), Path(sys.argv[2])
files = sorted(
    p for p in root.rglob("*")
    if p.is_file()
)
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
    for path in files:
        info = zipfile.ZipInfo(str(path.relative_to(root)), date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, path.read_bytes())
size = out.stat().st_size
print(f"{out}: {len(files)} files, {size / 1e6:.1f} MB (Lambda's limit: 50 MB zipped, 250 MB unzipped)")
PY
