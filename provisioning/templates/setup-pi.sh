#!/usr/bin/env bash
# Set up this Raspberry Pi (Raspberry Pi OS Bookworm) as a kws-edge-node, idempotently.
# Written by `kws-fleet render`; copy this node's folder to the Pi and run `sudo ./setup-pi.sh`.
# Safe to run again: each step checks before it changes anything.
#
#   1. /boot/firmware/config.txt: I2S on + the microphone overlay; I2C on for the OLED
#   2. /etc/asound.conf: the SPH0645 as ALSA's default capture device, shareable (dsnoop)
#   3. Debian packages, the `edge-node` system user, a venv in /opt/edge-node with the package
#   4. /etc/edge-node: node.yaml (+ ca.crt, fleet.pub), the systemd unit, enabled and started
#
# Environment: SETUP_STEPS="boot alsa packages venv service" picks steps; SETUP_ROOT prefixes
# every path written (for a dry run into a folder); PACKAGE overrides the pip requirement.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="${SETUP_ROOT:-}"
steps="${SETUP_STEPS:-boot alsa packages venv service}"
package="${PACKAGE:-@PACKAGE@}"
venv=/opt/edge-node/.venv
reboot_needed=0

say() { echo "setup-pi: $*" >&2; }
want() { [[ " $steps " == *" $1 "* ]]; }

if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
  say "run as root (sudo $0)"; exit 1
fi

# A line in config.txt, added once under [all] (the file may end in a model-specific section).
config_line() {
  local file="$1" line="$2"
  if ! grep -qxF "$line" "$file"; then
    printf '\n[all]\n%s\n' "$line" >>"$file"
    say "config.txt: added $line"
    reboot_needed=1
  fi
}

step_boot() {
  local config="$root/boot/firmware/config.txt"
  # Bookworm moved config.txt to /boot/firmware; older images keep /boot/config.txt.
  [ -f "$config" ] || [ ! -f "$root/boot/config.txt" ] || config="$root/boot/config.txt"
  mkdir -p "$(dirname "$config")"
  touch "$config"
  config_line "$config" "dtparam=i2s=on"
  # The SPH0645 needs only a bit clock and word select from the Pi and sends 32-bit frames
  # (18 data bits). Bookworm's kernels ship no SPH0645 overlay and Adafruit's installer builds
  # an out-of-tree module with DKMS, which breaks on kernel updates. `googlevoicehat-soundcard`
  # is in every Pi kernel, makes the Pi the I2S clock master and captures S32_LE stereo: the
  # usual choice for SPH0645/INMP441 breakouts (`edge-node doctor` accepts it, and also
  # `adau7002-simple`, the other in-kernel option, if you prefer to edit this line).
  config_line "$config" "dtoverlay=googlevoicehat-soundcard"
  # The SSD1306 OLED (128x64, address 0x3C) sits on the ARM I2C bus (GPIO 2/3).
  config_line "$config" "dtparam=i2c_arm=on"
  local modules="$root/etc/modules"
  mkdir -p "$(dirname "$modules")"
  touch "$modules"
  grep -qxF i2c-dev "$modules" || { echo i2c-dev >>"$modules"; say "modules: added i2c-dev"; }
}

step_alsa() {
  local conf="$root/etc/asound.conf"
  mkdir -p "$(dirname "$conf")"
  # dsnoop lets `arecord` (or `edge-node doctor`) listen while the node runs; plug converts
  # rate and format for whoever opens it (the node asks for 16 kHz, int32, 2 channels). No
  # softvol: the SPH0645 has a large DC offset, so gain before the node's DC removal would
  # clip; set `audio.gain_db` in node.yaml instead (applied after DC removal).
  local want_conf
  want_conf='# Written by kws-edge-node setup-pi.sh: the I2S microphone as the default capture device.
pcm.kwsmic_snoop {
    type dsnoop
    ipc_key 20874
    ipc_perm 0666
    slave {
        pcm "hw:sndrpigooglevoi"
        format S32_LE
        channels 2
        rate 48000
    }
}
pcm.kwsmic {
    type plug
    slave.pcm "kwsmic_snoop"
}
pcm.!default {
    type asym
    capture.pcm "kwsmic"
    playback.pcm "plughw:0"
}
ctl.!default {
    type hw
    card 0
}'
  if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$want_conf" ]; then
    [ ! -f "$conf" ] || cp "$conf" "$conf.before-kws"
    printf '%s\n' "$want_conf" >"$conf"
    say "wrote $conf"
  fi
}

step_packages() {
  local debs=(python3-venv python3-dev portaudio19-dev libopenblas0 alsa-utils i2c-tools
              fonts-dejavu-core libjpeg62-turbo)
  local missing=()
  for pkg in "${debs[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
  if ! id edge-node >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/edge-node --no-create-home --shell /usr/sbin/nologin \
      edge-node
    say "created user edge-node"
  fi
  for group in audio i2c gpio; do
    if getent group "$group" >/dev/null && ! id -nG edge-node | grep -qw "$group"; then
      usermod -aG "$group" edge-node
    fi
  done
}

step_venv() {
  [ -x "$venv/bin/python" ] || { python3 -m venv "$venv"; say "created $venv"; }
  # A wheel copied beside this script wins over the package index (offline installs).
  local wheel
  wheel="$(find "$here" -maxdepth 1 -name 'kws_edge_node-*.whl' | sort | tail -n 1)"
  [ -z "$wheel" ] || package="$wheel"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q --upgrade "${package}[pi]"
  say "installed ${package}[pi]: $("$venv/bin/edge-node" --version 2>&1 || true)"
}

step_service() {
  local etc="$root/etc/edge-node" unit="$root/etc/systemd/system/edge-node.service"
  install -d -m 0750 "$etc"
  install -m 0640 "$here/node.yaml" "$etc/node.yaml"
  for extra in ca.crt fleet.pub; do
    [ ! -f "$here/$extra" ] || install -m 0644 "$here/$extra" "$etc/$extra"
  done
  install -D -m 0644 "$here/edge-node.service" "$unit"
  if [ -z "$root" ]; then
    chgrp -R edge-node "$etc"
    systemctl daemon-reload
    systemctl enable edge-node.service
    systemctl restart edge-node.service
    say "edge-node.service enabled and (re)started"
  fi
}

for step in boot alsa packages venv service; do
  if want "$step"; then "step_$step"; fi
done
if [ "$reboot_needed" -eq 1 ]; then
  say "config.txt changed: reboot for the microphone and the OLED to appear (sudo reboot)"
elif [ -z "$root" ] && want service; then
  "$venv/bin/edge-node" doctor --config /etc/edge-node/node.yaml || true
fi
