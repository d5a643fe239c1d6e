#!/usr/bin/env bash
# Installs Debian's Chromium for the studio's browser test (tests/test_app_browser.py), only when it is missing.
# Playwright drives it through executable_path, so no Playwright browser download is needed.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core
