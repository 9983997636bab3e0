#!/bin/sh
# azd postdeploy hook: subscribe the blob trigger to BlobCreated events of the input container.
# The subscription delivers to the blob extension's webhook, which needs the host's
# blobs_extension system key; the host creates that key only once the deployed code has a blob
# trigger with the Event Grid source. So this runs after deploy and waits for the key.
# azd passes its environment (infra outputs) as variables; to run it by hand, export them
# first: eval "$(azd env get-values)"
set -eu

# The blob trigger function in triggers/blob_start.py (tests/infra checks the name).
function_name=start_batch_from_blob
subscription_name=batch-input-blob-created

if ! command -v az >/dev/null 2>&1; then
    echo "postdeploy: the Azure CLI (az) is required (see README.md, Deploy to Azure)." >&2
    exit 1
fi
: "${AZURE_RESOURCE_GROUP:?postdeploy: AZURE_RESOURCE_GROUP is not set (run azd provision first)}"
: "${AZURE_FUNCTION_APP_NAME:?postdeploy: AZURE_FUNCTION_APP_NAME is not set}"
: "${AZURE_FUNCTION_APP_HOSTNAME:?postdeploy: AZURE_FUNCTION_APP_HOSTNAME is not set}"
: "${EVENT_GRID_SYSTEM_TOPIC_NAME:?postdeploy: EVENT_GRID_SYSTEM_TOPIC_NAME is not set}"
: "${BATCH_INPUT_CONTAINER:?postdeploy: BATCH_INPUT_CONTAINER is not set}"

key=""
attempt=1
while [ "$attempt" -le 30 ]; do
    key=$(az functionapp keys list --name "$AZURE_FUNCTION_APP_NAME" \
        --resource-group "$AZURE_RESOURCE_GROUP" \
        --query "systemKeys.blobs_extension" --output tsv 2>/dev/null || true)
    if [ -n "$key" ]; then
        break
    fi
    echo "postdeploy: waiting for the blobs_extension key of $AZURE_FUNCTION_APP_NAME ($attempt/30)"
    sleep 10
    attempt=$((attempt + 1))
done
if [ -z "$key" ]; then
    echo "postdeploy: $AZURE_FUNCTION_APP_NAME has no blobs_extension key after 5 minutes." \
        "The blob trigger must use the Event Grid source (app setting BATCH_TRIGGER_SOURCE=EventGrid)." \
        "Run scripts/postdeploy.sh again once the app is up." >&2
    exit 1
fi

endpoint="https://${AZURE_FUNCTION_APP_HOSTNAME}/runtime/webhooks/blobs?functionName=Host.Functions.${function_name}&code=${key}"

# Create or update: running the hook again replaces the endpoint (a rotated key) in place.
az eventgrid system-topic event-subscription create \
    --name "$subscription_name" \
    --resource-group "$AZURE_RESOURCE_GROUP" \
    --system-topic-name "$EVENT_GRID_SYSTEM_TOPIC_NAME" \
    --endpoint-type webhook \
    --endpoint "$endpoint" \
    --included-event-types Microsoft.Storage.BlobCreated \
    --subject-begins-with "/blobServices/default/containers/${BATCH_INPUT_CONTAINER}/" \
    --max-delivery-attempts 30 \
    --event-ttl 1440 \
    --output none
echo "postdeploy: Event Grid subscription $subscription_name sends BlobCreated in" \
    "$BATCH_INPUT_CONTAINER to $function_name."
