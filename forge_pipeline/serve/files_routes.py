"""OpenAI's files resource for fine-tuning data: `POST /v1/files`, `GET /v1/files`, `GET /v1/files/{id}`,
`GET /v1/files/{id}/content`, `DELETE /v1/files/{id}`.

An upload (purpose `fine-tune`) is checked exactly as `forge dataset validate` checks a file (curate/validate.py:
line-numbered problems, answered as one OpenAI 400 naming `file`) and then added to the imports folder as
`forge dataset validate --add` does, so the next dataset version reads it like any other source: PII-scrubbed,
deduplicated and curated. Deleting a file removes it from the imports too (dataset versions already built
keep their copy). Files and their metadata live under <data_root>/serve/files/.

Uploads have their own size limit, `serve.max_file_bytes` (512 MB by default, OpenAI's limit), separate from
the small limit on every other body (serve.max_request_bytes, see app.BodyLimit). The multipart body is spooled
to disk as it arrives (Starlette), copied into place in blocks and validated line by line, so a file of
hundreds of MB never sits in memory; a bad line is named in the 400.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import FileResponse

from forge_pipeline.atomic import atomic_path, write_bytes_atomic, write_json_atomic
from forge_pipeline.curate.validate import add_import, validate_jsonl
from forge_pipeline.serve import dependencies as deps
from forge_pipeline.serve.errors import APIError, invalid, unsupported
from forge_pipeline.settings import ForgeSettings

FILE_ID = re.compile(r"^file-[0-9a-f]{24}$")
MAX_PROBLEMS_SHOWN = 20


class FileStore:
    def __init__(self, directory: Path, imports_dir: Path):
        self.directory = Path(directory)
        self.imports_dir = Path(imports_dir)

    def _meta(self, file_id: str) -> Path:
        return self.directory / f"{file_id}.json"

    def data_path(self, file_id: str) -> Path:
        return self.directory / f"{file_id}.jsonl"

    def import_path(self, file_id: str) -> Path:
        return self.imports_dir / f"{file_id}.jsonl"

    def get(self, file_id: str) -> dict:
        # The id pattern keeps client input from ever naming another path.
        if not FILE_ID.match(file_id) or not self._meta(file_id).is_file():
            raise APIError(404, f"No such File object: {file_id}", param="file_id", code="file_not_found")
        return json.loads(self._meta(file_id).read_text(encoding="utf-8"))

    def exists(self, file_id: str) -> bool:
        return bool(FILE_ID.match(file_id)) and self._meta(file_id).is_file()

    def all(self) -> list[dict]:
        if not self.directory.is_dir():
            return []
        records = [json.loads(p.read_text(encoding="utf-8")) for p in self.directory.glob("file-*.json")]
        return sorted(records, key=lambda r: (r["created_at"], r["id"]), reverse=True)

    def add(self, filename: str, content, max_tokens: int) -> dict:
        """Store, validate and import an upload; `content` is bytes or a binary file object (read in blocks)."""
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        self.directory.mkdir(parents=True, exist_ok=True)
        staged = self.data_path(file_id)
        if isinstance(content, bytes):
            write_bytes_atomic(staged, content)
        else:
            with atomic_path(staged) as partial, open(partial, "wb") as out:
                shutil.copyfileobj(content, out, 1 << 20)
        size = staged.stat().st_size
        report = validate_jsonl(staged, max_tokens=max_tokens)
        if not report.ok:
            staged.unlink()
            shown = [f"line {line}: {problem}" if line else problem for line, problem in report.problems]
            more = len(shown) - MAX_PROBLEMS_SHOWN
            raise invalid(
                f"{filename} is not valid fine-tuning data ({len(shown)} problem(s)): "
                + "; ".join(shown[:MAX_PROBLEMS_SHOWN])
                + (f"; and {more} more" if more > 0 else ""),
                param="file",
                code="invalid_file",
            )
        add_import(staged, self.imports_dir)  # a source of the next dataset version
        record = {
            "id": file_id,
            "object": "file",
            "bytes": size,
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": "fine-tune",
            "status": "processed",
            "expires_at": None,
            "status_details": None,
            "examples": report.examples,
        }
        write_json_atomic(self._meta(file_id), record)
        return record

    def delete(self, file_id: str) -> None:
        self.get(file_id)
        for path in (self.import_path(file_id), self.data_path(file_id), self._meta(file_id)):
            path.unlink(missing_ok=True)


def page(items: list[dict], after: str | None, limit: int) -> dict:
    """OpenAI's cursor page: items after the one with id `after`, at most `limit`, and whether more follow."""
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise invalid(f"after: no item with id {after!r}", param="after")
        items = items[ids.index(after) + 1 :]
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100", param="limit")
    return {
        "object": "list",
        "data": items[:limit],
        "has_more": len(items) > limit,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[:limit][-1]["id"] if items else None,
    }


router = APIRouter(dependencies=[Depends(deps.require_admin)])


@router.post("/v1/files")
async def create_file(
    file: UploadFile = File(...),
    purpose: str = Form(...),
    store: FileStore = Depends(deps.file_store),
    settings: ForgeSettings = Depends(deps.settings),
):
    if purpose != "fine-tune":
        raise unsupported("purpose", "this server keeps files for fine-tuning only ('fine-tune')")
    from starlette.concurrency import run_in_threadpool

    # `file.file` is Starlette's spooled temporary file: copied and validated in a worker thread, in blocks.
    await run_in_threadpool(file.file.seek, 0)
    name = Path(file.filename or "upload.jsonl").name
    record = await run_in_threadpool(store.add, name, file.file, settings.train.max_length)
    return {k: v for k, v in record.items() if k != "examples"}


@router.get("/v1/files")
def list_files(
    purpose: str | None = None,
    limit: int = 100,
    after: str | None = None,
    order: str = "desc",
    store: FileStore = Depends(deps.file_store),
):
    if order not in ("asc", "desc"):
        raise invalid("order must be 'asc' or 'desc'", param="order")
    items = [r for r in store.all() if purpose in (None, r["purpose"])]
    if order == "asc":
        items.reverse()
    return page([{k: v for k, v in r.items() if k != "examples"} for r in items], after, min(limit, 100))


@router.get("/v1/files/{file_id}")
def retrieve_file(file_id: str, store: FileStore = Depends(deps.file_store)):
    return {k: v for k, v in store.get(file_id).items() if k != "examples"}


@router.get("/v1/files/{file_id}/content")
def file_content(file_id: str, store: FileStore = Depends(deps.file_store)):
    record = store.get(file_id)
    return FileResponse(store.data_path(file_id), media_type="application/jsonl", filename=record["filename"])


@router.delete("/v1/files/{file_id}")
def delete_file(file_id: str, store: FileStore = Depends(deps.file_store)):
    store.delete(file_id)
    return {"id": file_id, "object": "file", "deleted": True}
