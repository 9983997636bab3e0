#!/bin/sh
# azd preprovision hook: make sure the azd environment holds the upstream subscription key
# (RECO_SUBSCRIPTION_KEY), which provisioning stores in Key Vault. With recoservice deployed
# (no RECO_EXTERNAL_ENDPOINT) a random key is generated once and kept in the azd environment;
# with an external endpoint, its key must be set by hand. The key is never printed.
set -eu

if [ -n "${RECO_SUBSCRIPTION_KEY:-}" ]; then
    echo "preprovision: RECO_SUBSCRIPTION_KEY is set."
    exit 0
fi
if [ -n "${RECO_EXTERNAL_ENDPOINT:-}" ]; then
    echo "preprovision: RECO_EXTERNAL_ENDPOINT is set; set its key too:" \
        "azd env set RECO_SUBSCRIPTION_KEY <key>" >&2
    exit 1
fi
if ! command -v azd >/dev/null 2>&1; then
    echo "preprovision: azd is required (see README.md, Deploy to Azure)." >&2
    exit 1
fi
# 32 random bytes as hex: no comma (RECOSERVICE_KEYS is comma-separated), no shell quoting issue.
key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
azd env set RECO_SUBSCRIPTION_KEY "$key" >/dev/null
echo "preprovision: generated RECO_SUBSCRIPTION_KEY for recoservice (azd env get-value RECO_SUBSCRIPTION_KEY shows it)."
