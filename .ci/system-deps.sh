#!/usr/bin/env bash
# Installs the Debian packages the tests need (promtool, alertmanager, pdftotext, chromium, postgresql), only where they are missing,
# so a warm machine skips apt entirely.
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# A real Alertmanager for the alert-delivery tests (tests/sla_rules/test_alertmanager.py).
[ -x /usr/bin/prometheus-alertmanager ] || need+=(prometheus-alertmanager)
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
# Headless Chromium for the browser tests and screenshots (Playwright drives it; it never
# downloads a browser of its own).
[ -x /usr/bin/chromium ] || need+=(chromium)
# Debian's PostgreSQL: the lake tests run a private cluster as the DuckLake catalog
# (adapters/sandbox/postgres.py); only the binaries are used, no system cluster.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
