#!/usr/bin/env bash
# Measures image upload and download throughput and peak RSS over HTTP on
# loopback. Arguments are transfer sizes in MiB (default: 64 4096);
# BENCH_RUNS sets the runs per size (default 3). Needs about twice the
# largest size free under $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo bench -p oxstack-image --bench transfer -- "$@"
