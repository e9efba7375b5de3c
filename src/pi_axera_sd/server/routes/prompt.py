"""``POST /prompt/tokens``: how the service reads a prompt, for the page's "42/75" counters.

It uses the loaded model's own tokenizer and the same reading as generation (extra-network tags,
editing, emphasis, BREAK, 75-token chunks), so the counts are what the UNet will see.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from pi_axera_sd.engine.prompts.chunks import CHUNK_TOKENS
from pi_axera_sd.server.core.context import read_json, service_of
from pi_axera_sd.server.core.generation import require_pipeline
from pi_axera_sd.server.dialects.schemas import PromptTokensRequest, openapi_body

router = APIRouter(tags=["prompt"])


class ChunkCount(BaseModel):
    tokens: int
    of: int = CHUNK_TOKENS


class PromptTokensResponse(BaseModel):
    chunks: list[ChunkCount]  # the prompt's 75-token chunks (its longest scheduled form)
    token_count: int
    model_chunks: int  # chunks this model takes (1 on a fixed-77 model such as an .axmodel)
    dropped_tokens: int
    extra_networks: list[str]  # <lora:...> tags: removed, not applied
    warnings: list[str]


@router.post(
    "/prompt/tokens",
    response_model=PromptTokensResponse,
    openapi_extra=openapi_body(PromptTokensRequest),
    summary="token counts per 75-token chunk, read as generation reads the prompt",
)
async def prompt_tokens(request: Request) -> dict[str, Any]:
    req = PromptTokensRequest.parse(await read_json(request))
    service = service_of(request)
    pipeline = require_pipeline(service)
    syntax = req.prompt_syntax if req.prompt_syntax is not None else request.app.state.options.prompt_syntax
    steps = len(pipeline.timesteps)
    read = await service.run_host_work(
        lambda: pipeline.prompt_reader.read(
            req.prompt, steps, syntax=syntax, max_chunks=pipeline.context_chunks
        )
    )
    return {
        "chunks": [{"tokens": count, "of": CHUNK_TOKENS} for count in read.chunk_tokens],
        "token_count": read.token_count,
        "model_chunks": pipeline.context_chunks,
        "dropped_tokens": read.dropped_tokens,
        "extra_networks": [tag.text for tag in read.tags],
        "warnings": read.warnings(),
    }
