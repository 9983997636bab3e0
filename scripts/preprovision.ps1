# azd preprovision hook (Windows): make sure the azd environment holds the upstream
# subscription key (RECO_SUBSCRIPTION_KEY), which provisioning stores in Key Vault. Same
# behaviour as preprovision.sh. The key is never printed.
$ErrorActionPreference = 'Stop'

if ($env:RECO_SUBSCRIPTION_KEY) {
    Write-Host 'preprovision: RECO_SUBSCRIPTION_KEY is set.'
    exit 0
}
if ($env:RECO_EXTERNAL_ENDPOINT) {
    Write-Error 'preprovision: RECO_EXTERNAL_ENDPOINT is set; set its key too: azd env set RECO_SUBSCRIPTION_KEY <key>'
    exit 1
}
if (-not (Get-Command azd -ErrorAction SilentlyContinue)) {
    Write-Error 'preprovision: azd is required (see README.md, Deploy to Azure).'
    exit 1
}
# 32 random bytes as hex: no comma (RECOSERVICE_KEYS is comma-separated).
$bytes = [byte[]]::new(32)
[System.Security.Cryptography.RandomNumberGenerator]::Fill($bytes)
$key = -join ($bytes | ForEach-Object { $_.ToString('x2') })
azd env set RECO_SUBSCRIPTION_KEY $key | Out-Null
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
Write-Host 'preprovision: generated RECO_SUBSCRIPTION_KEY for recoservice (azd env get-value RECO_SUBSCRIPTION_KEY shows it).'
