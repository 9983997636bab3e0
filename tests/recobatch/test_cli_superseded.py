"""``submit --wait`` stops when the file is uploaded again meanwhile (that run writes no marker)."""

from __future__ import annotations

import io

from recobatch import storage
from recobatch.cli import submit


class _ReuploadOnFirstProgress(io.StringIO):
    """Output that uploads a newer version of the blob when the first progress line shows."""

    def __init__(self, blob) -> None:
        super().__init__()
        self.blob = blob

    def write(self, text: str) -> int:
        if "chunks" in text and self.blob is not None:
            self.blob.upload_blob(b'{"requests": [{"SeedItems": ["B"]}]}', overwrite=True)
            self.blob = None
        return super().write(text)


def test_wait_ends_with_code_3_when_the_blob_is_uploaded_again(app_settings, blob_service,
                                                              tmp_path):
    path = tmp_path / "cli-superseded.json"
    path.write_text('{"requests": [{"SeedItems": ["A"]}]}')
    for name in (app_settings.input_container, app_settings.output_container,
                 app_settings.work_container):
        storage.ensure_container(blob_service, name)
    inputs = blob_service.get_container_client(app_settings.input_container)
    out = _ReuploadOnFirstProgress(inputs.get_blob_client("cli-superseded.json"))

    try:
        code = submit(path, app_settings, wait=True, timeout=30, out=out)
    finally:
        inputs.delete_blob("cli-superseded.json")

    assert code == 3
    assert "replaced by a newer upload" in out.getvalue()
    assert f"{app_settings.output_container}/cli-superseded.json/" in out.getvalue()
