#!/usr/bin/env bash
# npm run backend:native — the OPTIONAL native TensorFlow.js backend (@tensorflow/tfjs-node) for
# the learners, installed without its install script's download of libtensorflow (a host that
# may be unreachable): the TensorFlow C API ships inside the `tensorflow-cpu` wheel on PyPI
# (libtensorflow_cc.so.2 exports TF_*/TFE_*; headers under tensorflow/include). This stages the
# wheel's libraries and headers where tfjs-node's build looks, then builds its N-API addon from
# source against the local Node headers. learners/backend.ts picks tfjs-node up when importable.
#
# Adapted from the project's shared recipe "tfjs-node-from-pypi.sh" (measured on this machine
# kind: ~60 s, 274 MB download, ~635 MB on disk after strip). Differences: tfjs-node is installed
# with --no-save (it is never a dependency: package.json and the lock file stay as they are, and
# `npm ci` never tries to fetch libtensorflow); the project's own dependencies must already be
# installed (npm ci).
#
# Caveats: tfjs-node 4.22 was built for libtensorflow 2.9.1; this pairs it with TensorFlow
# 2.21's C API (stable, but not a pairing upstream supports). Needs x86-64 with AVX, glibc >= 2.27,
# pip, unzip, a C++ toolchain and Node's headers (/usr/include/node, or set NODEDIR). A later
# `npm ci` or `npm install` removes tfjs-node again: rerun this script. `--uninstall` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."

TFJS_VER=${TFJS_VER:-$(node -p "require('@tensorflow/tfjs/package.json').version")}
TF_VER=${TF_VER:-2.21.0}
TF_SHA256=${TF_SHA256:-2b847d217b02ee7731ed91431daf3250daa0196c3c94614d23be27232e6e5b6c} # cp311 manylinux_2_27_x86_64
STRIP=${STRIP:-1}
NODEDIR=${NODEDIR:-/usr}

if [ "${1:-}" = "--uninstall" ]; then
  npm uninstall --no-save --no-audit --no-fund @tensorflow/tfjs-node
  echo "tfjs-node removed; the learners use the default backend order again"
  exit 0
fi

[ -d node_modules/@tensorflow/tfjs ] || { echo "run npm ci first" >&2; exit 1; }
[ "$(uname -m)" = x86_64 ] || { echo "the tensorflow-cpu wheel used here is x86-64 only" >&2; exit 1; }
grep -qw avx /proc/cpuinfo || { echo "TensorFlow's wheel needs a CPU with AVX" >&2; exit 1; }
[ -f "$NODEDIR/include/node/node_api.h" ] || { echo "Node headers not found under $NODEDIR/include/node (set NODEDIR)" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# 1. tfjs-node's JavaScript, matching the installed tfjs, without its install script (which
#    would try to download libtensorflow) and without touching package.json or the lock file.
npm install --no-save --ignore-scripts --no-audit --no-fund "@tensorflow/tfjs-node@$TFJS_VER"

# 2. The wheel (hash-pinned), only as a zip: nothing is installed into Python.
echo "tensorflow-cpu==$TF_VER --hash=sha256:$TF_SHA256" >"$WORK/req.txt"
pip download --no-deps --no-cache-dir --only-binary=:all: --require-hashes \
  --python-version 3.11 --platform manylinux_2_27_x86_64 -r "$WORK/req.txt" -d "$WORK"
WHL=$(ls "$WORK"/tensorflow_cpu-*.whl)

# 3. Libraries and the C-API headers the binding needs, where tfjs-node's install.js looks.
T=node_modules/@tensorflow/tfjs-node
rm -rf "$T/deps"
mkdir -p "$T/deps/lib"
unzip -q -j "$WHL" tensorflow/libtensorflow_cc.so.2 tensorflow/libtensorflow_framework.so.2 -d "$T/deps/lib"
unzip -q "$WHL" 'tensorflow/include/tensorflow/c/*' 'tensorflow/include/tensorflow/core/platform/ctstring*' \
  'tensorflow/include/tsl/platform/ctstring*' 'tensorflow/include/xla/tsl/c/*' -d "$WORK/x"
mv "$WORK/x/tensorflow/include" "$T/deps/include"
if [ "$STRIP" = 1 ]; then strip --strip-unneeded "$T"/deps/lib/*.so.2; fi
(
  cd "$T/deps/lib"
  ln -sf libtensorflow_cc.so.2 libtensorflow.so          # -ltensorflow at link time
  ln -sf libtensorflow_cc.so.2 libtensorflow.so.2.9.1    # the file install.js checks for
  ln -sf libtensorflow_framework.so.2 libtensorflow_framework.so
)
# install.js: a custom tf-lib and no custom addon => "node-pre-gyp install --build-from-source"
echo '{"tf-lib": "unused: deps already staged"}' >"$T/scripts/custom-binary.json"

# 4. The N-API addon, built with the local Node headers (no download of them), 2 jobs.
npm_config_nodedir="$NODEDIR" JOBS=2 npm rebuild @tensorflow/tfjs-node --foreground-scripts

# 5. Check, the way the learners load it.
TF_CPP_MIN_LOG_LEVEL=2 VIRGO_TF_BACKEND=tensorflow node --import tsx -e "
const { selectBackend } = await import('./learners/backend.ts');
const b = await selectBackend(['tensorflow']);
console.log('tfjs-node OK: backend', b.name, 'libtensorflow', b.tf.backend().binding?.TF_Version ?? '?');"
echo "the learners now use tfjs-node (VIRGO_TF_BACKEND=cpu to compare); npm run backend:native -- --uninstall removes it"
