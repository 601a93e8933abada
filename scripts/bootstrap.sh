#!/usr/bin/env bash
# Install what kws-edge-node needs on a fresh Debian/Raspberry Pi OS machine, idempotently:
#   scripts/bootstrap.sh node   the node only (runtime deps)          -> .venv
#   scripts/bootstrap.sh dev    node + tests + training (TensorFlow)  -> .venv
set -euo pipefail
profile="${1:-node}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

need_apt=()
debs_node=(sox)
debs_dev=(espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts festvox-kdlpc16k sox
          portaudio19-dev alsa-utils mosquitto shellcheck)
# Non-English festival voices: accented training speakers (training/tts/accents.py).
debs_dev+=(festvox-italp16k festvox-itapc16k festvox-suopuhe-lj festvox-suopuhe-mv
           festvox-czech-dita festvox-czech-krb festvox-czech-machac festvox-czech-ph
           festvox-ru festvox-ca-ona-hts)
if [ "$profile" = dev ]; then debs=("${debs_dev[@]}"); else debs=("${debs_node[@]}"); fi
for pkg in "${debs[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need_apt[*]}" >&2
  sudo_cmd=(); [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_apt[@]}" >&2
fi

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($python --version)" >&2
  "$python" -m venv .venv
  .venv/bin/pip install -q --upgrade pip >&2
fi
stamp=".venv/.installed-$profile-$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  if [ "$profile" = dev ]; then extras="[dev,train,demo]"; else extras="[demo]"; fi
  echo "bootstrap: pip install -e .$extras" >&2
  .venv/bin/pip install -q -e ".$extras" >&2
  touch "$stamp"
fi
