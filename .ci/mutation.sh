#!/usr/bin/env bash
# Mutation testing (`make mutation`): how many deliberately broken versions of the code the tests
# catch. Kept out of CI's time: it runs the covering tests once per mutant (minutes per module).
#
# mutmut 2 mutates files in place, so it works on a copy of the tracked tree (build/mutation),
# never on this checkout; the copy's src/ and functions/ come first on PYTHONPATH, so the tests
# import the mutated code, not the editable install's. Each module is tested by the test files
# that exercise it (-x: the first failure kills the mutant).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${MUTATION_WORK:-$ROOT/build/mutation}
MUTMUT=${MUTMUT:-$ROOT/.venv-mutation/bin/mutmut}
# `timeout`: a mutant can make a test wait forever (a pagination loop that never ends); mutmut 2's
# own timeout then left its runner stuck here, so each run is bounded and a hang counts as caught.
PYTEST="timeout 120 $ROOT/.venv/bin/python -m pytest -x -q -p no:randomly -p no:cacheprovider"

# module to mutate : the tests that cover it
TARGETS=(
  "functions/textclf_api/logic/health.py:tests/unit/api/test_health.py"
  "functions/textclf_api/logic/predict.py:tests/unit/api/test_predict.py"
  "functions/textclf_api/logic/training.py:tests/unit/api/test_training.py"
  "functions/textclf_api/logic/deployment.py:tests/unit/api/test_deployment.py"
  "functions/textclf_api/logic/deploy_records.py:tests/unit/api/test_deployment.py"
  "model/lexical.py:tests/unit/training/test_lexical.py tests/unit/serving/test_lexical_head_serving.py"
  "src/textclf/packaging/fidelity.py:tests/unit/serving/test_fidelity_and_reuse.py"
)
if [[ $# -gt 0 ]]; then  # only the targets whose module path contains one of the arguments
  selected=()
  for target in "${TARGETS[@]}"; do
    for want in "$@"; do [[ ${target%%:*} == *"$want"* ]] && selected+=("$target"); done
  done
  TARGETS=("${selected[@]}")
fi

rm -rf "$WORK" && mkdir -p "$WORK"
git ls-files -z | (cd "$ROOT" && xargs -0 cp --parents -t "$WORK")
cd "$WORK"
export PYTHONPATH=$WORK/src:$WORK/functions TEXTCLF_MODEL_CODE=$WORK/model
export TEXTCLF_SHARED_DATA=${TEXTCLF_SHARED_DATA:-$ROOT/../shared/data/uci-news/NewsAggregatorDataset.zip}
report=${MUTATION_REPORT:-$ROOT/build/mutation-report.txt}
: > "$report"
for target in "${TARGETS[@]}"; do
  module=${target%%:*}
  tests=${target#*:}
  rm -f .mutmut-cache
  echo "== $module ($tests)" | tee -a "$report"
  "$MUTMUT" run --paths-to-mutate "$module" --runner "$PYTEST $tests" --no-progress --CI >/dev/null || true
  "$MUTMUT" results | tee -a "$report" | tail -n +1 >/dev/null
  python3 - "$module" >> "$report" <<'PY'
import sqlite3, sys
rows = sqlite3.connect(".mutmut-cache").execute("select status, count(*) from Mutant group by status").fetchall()
counts = dict(rows)
killed = counts.get("ok_killed", 0)
total = sum(counts.values())
print(f"{sys.argv[1]}: {killed}/{total} mutants killed ({killed / max(total, 1):.1%}); {counts}")
PY
  tail -n 1 "$report"
done
echo "report: $report"
