"""The JSON edge, log sanitising and the error classification, as pure functions."""

from __future__ import annotations

import base64
import json
import logging
import os
import random

import pytest

from pi_axera_sd.errors import Cancelled, InvalidInput, PayloadTooLarge
from pi_axera_sd.interrogate.scoring import check_categories
from pi_axera_sd.server.core import json_body
from pi_axera_sd.server.core.failures import ClientGone, counts_as_runtime_failure, to_api_error
from pi_axera_sd.server.core.json_body import JsonLimits, decode_json
from pi_axera_sd.server.core.lane import LaneUnavailable, QueueFull
from pi_axera_sd.server.core.logs import JsonFormatter
from pi_axera_sd.server.dialects.a1111 import OptionsStore


@pytest.mark.parametrize(
    ("raw", "mentions"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "nested deeper than 64"),
        (b'{"a":' * 65 + b"1" + b"}" * 65, "nested deeper than 64"),
        (b'{"seed": NaN}', "NaN"),
        (b'{"cfg_scale": -Infinity}', "-Infinity"),
        (b'{"width": 1e999}', "out of range"),
        (b'{"seed": ' + b"9" * 101 + b"}", "digits"),
        (b'{"prompt": "caf\xe9"}', "not UTF-8"),
        (b'{"prompt": "\xed\xa0\x80"}', "not UTF-8"),  # an encoded surrogate is not UTF-8
        ('{"a": 1}'.encode("utf-16"), "not UTF-8"),
        (b" \n\t", "empty"),
        (b'{"prompt": "a', "not valid JSON"),
        (b"[" + b"0," * 100_000 + b"0]", "more than 100000 values"),
    ],
)
def test_bodies_refused_before_or_while_parsing(raw, mentions):
    with pytest.raises(InvalidInput, match=mentions):
        decode_json(raw)


def test_lone_surrogates_become_the_replacement_character():
    parsed = decode_json(b'{"\\ud800key": ["\\udfff", "ok \\ud83d\\ude00"], "p": "a\\ud800b"}')
    assert parsed == {"\ufffdkey": ["\ufffd", "ok \U0001f600"], "p": "a\ufffdb"}
    json.dumps(parsed, ensure_ascii=False).encode("utf-8")  # serialisable by construction


def test_limits_are_exact_and_ignore_what_is_inside_strings():
    limits = JsonLimits(max_depth=3, max_items=5)
    assert decode_json(b"[[[1]]]", limits) == [[[1]]]
    assert decode_json(b'["[[[[[,,,,,,,", "\\"[[[[{{{"]', limits) == ["[[[[[,,,,,,,", '"[[[[{{{']
    assert decode_json(b'["\\\\", [[1]]]', limits) == ["\\", [[1]]]
    with pytest.raises(InvalidInput, match="nested"):
        decode_json(b'["\\\\", [[[1]]]]', limits)
    with pytest.raises(InvalidInput, match="values"):
        decode_json(b"[1, 2, 3, 4, 5, 6]", limits)


def _random_text(rng: random.Random, size: int) -> str:
    alphabet = ['"', "\\", "/", "\n", "a", "Z", "[", "{", ",", "é", "\u202e", "\U0001f600", "\x00", " "]
    return "".join(rng.choice(alphabet) for _ in range(size))


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_long_strings_decode_exactly_across_chunk_and_piece_boundaries(monkeypatch, chunk):
    monkeypatch.setattr(json_body, "_CHUNK", chunk)
    rng = random.Random(chunk)
    blob = base64.b64encode(os.urandom(3000)).decode()
    body = {
        "prompt": _random_text(rng, 5000),
        "init_images": [blob, blob.replace("/", "\\/")],
        _random_text(rng, 300): [_random_text(rng, 80) for _ in range(20)],
        "nested": {"deep": [[_random_text(rng, 200)]]},
    }
    for ascii_only in (True, False):
        raw = json.dumps(body, ensure_ascii=ascii_only).encode()
        assert decode_json(raw) == json.loads(raw)


def test_a_bom_and_raw_control_characters_are_allowed():
    assert decode_json(b'\xef\xbb\xbf{"prompt": "a"}') == {"prompt": "a"}
    for size in (3, 300):  # short strings go through the parser, long ones around it
        assert decode_json(b'["' + b"a\tb\n" * size + b'"]') == ["a\tb\n" * size]


def test_label_limits_count_labels_as_sent_before_any_per_label_work():
    with pytest.raises(InvalidInput, match="more than 2000"):
        check_categories({"g": ["same"] * 80_000}, max_labels=2000)
    assert check_categories({"g": [" a", "a ", "b"]}, max_labels=3) == {"g": ["a", "b"]}


def test_only_runtime_failures_count_toward_the_restart_limit():
    clients = [
        InvalidInput("x"),
        PayloadTooLarge("x"),
        Cancelled("x"),
        ClientGone("x"),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
    ]
    refusals = [LaneUnavailable("stopping"), QueueFull("full")]
    assert not any(counts_as_runtime_failure(e) for e in clients + refusals)
    assert [to_api_error(e).status for e in clients] == [400, 413, 409, 499, 400]
    assert counts_as_runtime_failure(RuntimeError("npu driver error"))


def test_options_keep_only_short_plain_values():
    store = OptionsStore(save_images=False)
    ignored = store.update({"sd_vae": "v" * 5000, "sd_lora": "\ufffd", "samples_format": {"a": 1}})
    assert set(ignored) == {"sd_vae", "samples_format"}
    assert store.read(None)["sd_lora"] == "\ufffd"


def _format(msg: str, *args, **fields) -> dict:
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, msg, args, None)
    record.fields = fields
    return json.loads(JsonFormatter(max_string=100).format(record))


def test_log_lines_cut_every_string_and_redact_base64_anywhere():
    blob = base64.b64encode(os.urandom(600)).decode()
    line = _format(
        "client asked for model %r; only %r is loaded",
        blob,
        "tiny",
        params={"prompt": "word " * 200_000, "img": f"data:image/png,{blob}", "list": list(range(1000))},
        note=f"see data:image/png,{blob[:80]} and {blob[:90]} inline",
    )
    text = json.dumps(line)
    assert blob[:40] not in text and blob[40:80] not in text
    assert len(line["msg"]) < 200
    assert line["params"]["prompt"].endswith("...<1000000 chars>")
    assert len(line["params"]["prompt"]) < 130
    assert line["params"]["img"].startswith("<base64 data")
    assert line["params"]["list"][-1] == "...<1000 items>"
    assert "<base64 data, 80 chars>" in line["note"] or "<base64 data" in line["note"]


def test_hex_digests_and_prose_are_not_taken_for_base64():
    digest = "0123456789abcdef" * 4
    line = _format("model %s", digest, prose="a long prompt, with spaces, " * 3)
    assert digest in line["msg"]
    assert line["prose"].startswith("a long prompt")


def test_a_lone_surrogate_cannot_break_a_log_line():
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "prompt %s", ("\ud800",), None)
    record.fields = {"prompt": "a\udfff"}
    text = JsonFormatter().format(record)
    text.encode("utf-8")  # a stream in strict UTF-8 takes it
    assert json.loads(text)["prompt"] == "a\udfff"  # escaped in the line, nothing lost


def test_the_tokenizer_takes_any_string():
    from importlib.resources import files

    from pi_axera_sd.engine.tokenizer import ClipTokenizer

    tokenizer = ClipTokenizer(str(files("pi_axera_sd") / "data" / "tokenizer"))
    for text in ("\ud800", "a\udfffb\x00", "\u202e\U0001f600", "word " * 100_000, ""):
        ids = tokenizer.encode(text)
        assert ids.shape == (77,) and ids[0] == tokenizer.bos_id
    assert tokenizer.encode("\ud800").tolist() == tokenizer.encode("\ufffd").tolist()
    assert tokenizer.encode_batch(["\ud800", "ok"]).shape == (2, 77)
