# browser: Debian's chromium + chromium-driver, for the dashboard's headless browser tests (Selenium).
# shellcheck shell=bash

browser_install() {
  apt_install chromium chromium-driver fonts-dejavu-core
}

browser_start() {
  log "browser: $(chromium --version 2>/dev/null), $(chromedriver --version 2>/dev/null | awk '{print $1, $2}')"
}

browser_stop() { :; }

browser_status() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    echo "browser: ready ($(chromium --version 2>/dev/null))"; return 0
  fi
  echo "browser: not installed"; return 1
}

browser_env() {
  echo "export SETPOINT_CHROMIUM_BIN=$(printf %q "$(command -v chromium || echo /usr/bin/chromium)")"
  echo "export SETPOINT_CHROMEDRIVER_BIN=$(printf %q "$(command -v chromedriver || echo /usr/bin/chromedriver)")"
}
