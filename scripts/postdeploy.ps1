# azd postdeploy hook (Windows): subscribe the blob trigger to BlobCreated events of the input
# container, through the blob extension's webhook and its blobs_extension system key. Same
# behaviour as postdeploy.sh; azd passes its environment (infra outputs) as variables.
$ErrorActionPreference = 'Stop'

# The blob trigger function in triggers/blob_start.py (tests/infra checks the name).
$functionName = 'start_batch_from_blob'
$subscriptionName = 'batch-input-blob-created'

if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
    Write-Error 'postdeploy: the Azure CLI (az) is required (see README.md, Deploy to Azure).'
    exit 1
}
foreach ($name in 'AZURE_RESOURCE_GROUP', 'AZURE_FUNCTION_APP_NAME', 'AZURE_FUNCTION_APP_HOSTNAME',
                  'EVENT_GRID_SYSTEM_TOPIC_NAME', 'BATCH_INPUT_CONTAINER') {
    if (-not [Environment]::GetEnvironmentVariable($name)) {
        Write-Error "postdeploy: $name is not set (run azd provision first)."
        exit 1
    }
}

$key = ''
for ($attempt = 1; $attempt -le 30; $attempt++) {
    $key = az functionapp keys list --name $env:AZURE_FUNCTION_APP_NAME `
        --resource-group $env:AZURE_RESOURCE_GROUP `
        --query 'systemKeys.blobs_extension' --output tsv 2>$null
    if ($LASTEXITCODE -eq 0 -and $key) { break }
    Write-Host "postdeploy: waiting for the blobs_extension key of $($env:AZURE_FUNCTION_APP_NAME) ($attempt/30)"
    Start-Sleep -Seconds 10
}
if (-not $key) {
    Write-Error ("postdeploy: $($env:AZURE_FUNCTION_APP_NAME) has no blobs_extension key after 5 minutes. " +
        'The blob trigger must use the Event Grid source (app setting BATCH_TRIGGER_SOURCE=EventGrid). ' +
        'Run scripts/postdeploy.ps1 again once the app is up.')
    exit 1
}

$endpoint = "https://$($env:AZURE_FUNCTION_APP_HOSTNAME)/runtime/webhooks/blobs?functionName=Host.Functions.$functionName&code=$key"
# az is a batch file on Windows: an unquoted & would end the command there, so quote the URL.
$quotedEndpoint = '"' + $endpoint + '"'

# Create or update: running the hook again replaces the endpoint (a rotated key) in place.
az eventgrid system-topic event-subscription create `
    --name $subscriptionName `
    --resource-group $env:AZURE_RESOURCE_GROUP `
    --system-topic-name $env:EVENT_GRID_SYSTEM_TOPIC_NAME `
    --endpoint-type webhook `
    --endpoint $quotedEndpoint `
    --included-event-types Microsoft.Storage.BlobCreated `
    --subject-begins-with "/blobServices/default/containers/$($env:BATCH_INPUT_CONTAINER)/" `
    --max-delivery-attempts 30 `
    --event-ttl 1440 `
    --output none
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
Write-Host "postdeploy: Event Grid subscription $subscriptionName sends BlobCreated in $($env:BATCH_INPUT_CONTAINER) to $functionName."
