#!/usr/bin/env bash
# The Debian packages `make test` runs: promtool (Prometheus config and alert tests), Chromium (the web demo's
# browser test), Java 17 (TorchServe). Installs the missing ones as root, else with sudo, else says what to run.
set -euo pipefail
declare -A needs=([promtool]=prometheus [chromium]=chromium [java]=openjdk-17-jre-headless)
missing=()
for command in "${!needs[@]}"; do
    command -v "$command" >/dev/null || missing+=("${needs[$command]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
    run=()
elif command -v sudo >/dev/null && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
    run=(sudo)
else
    echo "make test needs these Debian packages; install them, then run make test again:" \
        "sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
fi
echo "installing Debian packages: ${missing[*]}"
"${run[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${run[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
