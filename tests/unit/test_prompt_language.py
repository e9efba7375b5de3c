"""Tests for engine.prompts: A1111's prompt language (extra networks, editing, alternation, emphasis,
BREAK, 75-token chunks, emphasis weighting). The A1111 examples are its documented results."""

from __future__ import annotations

import numpy as np
import pytest

from pi_axera_sd.engine.prompts import (
    CHUNK_TOKENS,
    Chunk,
    ExtraNetworkTag,
    apply_emphasis,
    make_chunks,
    parse_emphasis,
    prompt_at_step,
    prompt_schedule,
    strip_extra_networks,
)
from pi_axera_sd.engine.tokenizer import ClipTokenizer, load_tokenizer
from pi_axera_sd.modeltools.random_sd import packaged_tokenizer_dir

# --- extra networks ---------------------------------------------------------------------------------


def test_extra_networks_stripped_in_order() -> None:
    text, tags = strip_extra_networks("a <lora:name:0.8> cat, <hypernet:x>(b)")
    assert text == "a  cat, (b)"
    assert tags == (
        ExtraNetworkTag("lora", "name:0.8", "<lora:name:0.8>"),
        ExtraNetworkTag("hypernet", "x", "<hypernet:x>"),
    )


@pytest.mark.parametrize("prompt", ["<not a tag>", "<lora:>", "<lora name:x>", "<:x>", "a < b", "<lora:x"])
def test_not_tags_stay(prompt: str) -> None:
    assert strip_extra_networks(prompt) == (prompt, ())


def test_extra_network_args_run_to_first_close() -> None:
    # [^>]+ takes a "<" too: the first ">" after the kind ends the tag
    text, tags = strip_extra_networks("<a:<b:c>>x")
    assert (text, tags) == (">x", (ExtraNetworkTag("a", "<b:c", "<a:<b:c>"),))


def test_extra_networks_long_unclosed_input() -> None:
    text = "<a:" * 20000
    assert strip_extra_networks(text) == (text, ())


# --- schedule: A1111's examples (steps=10) ---------------------------------------------------------

A1111_SCHEDULES = [
    ("test", [(10, "test")]),
    ("a [b:3]", [(3, "a "), (10, "a b")]),
    ("a [b: 3]", [(3, "a "), (10, "a b")]),
    ("a [[[b]]:2]", [(2, "a "), (10, "a [[b]]")]),
    ("[(a:2):3]", [(3, ""), (10, "(a:2)")]),
    # whitespace is kept where written: "a " + "b " + " d" (A1111's own doctest gives 'a b  d')
    ("a [b : c : 1] d", [(1, "a b  d"), (10, "a  c  d")]),
    ("a[b:[c:d:2]:1]e", [(1, "abe"), (2, "ace"), (10, "ade")]),
    ("a [unbalanced", [(10, "a [unbalanced")]),
    ("a [b:.5] c", [(5, "a  c"), (10, "a b c")]),
    ("((a][:b:c [d:3]", [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
    ("[a|(b:1.1)]", [(step, "a" if step % 2 else "(b:1.1)") for step in range(1, 11)]),
    ("[fe|]male", [(step, "female" if step % 2 else "male") for step in range(1, 11)]),
    ("[fe|||]male", [(step, "female" if step in (1, 5, 9) else "male") for step in range(1, 11)]),
]


@pytest.mark.parametrize(("prompt", "expected"), A1111_SCHEDULES)
def test_a1111_schedules(prompt: str, expected: list[tuple[int, str]]) -> None:
    assert prompt_schedule(prompt, 10) == expected


# --- schedule: more rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "steps", "expected"),
    [
        ("a [b::3] c", 10, [(3, "a b c"), (10, "a  c")]),  # [from::when]: from, then nothing
        ("[a:b:0.5]", 4, [(2, "a"), (4, "b")]),  # a "." makes it a fraction of the steps
        ("[a:b:1.5]", 4, [(4, "a")]),  # 1.5 * 4 = 6 clamps to the last step
        ("[a:b:7]", 4, [(4, "a")]),
        ("[a:b:2]", 4, [(2, "a"), (4, "b")]),
        ("[a:b:5.]", 4, [(4, "a")]),  # "5." is a fraction too: 20 -> 4
        ("[a:b:1e1]", 20, [(10, "a"), (20, "b")]),  # an exponent without "." is a step number
        ("[a:b:0]", 4, [(4, "b")]),  # when < 1: no boundary, "to" from step 1
        ("[a:b:0.1]", 4, [(4, "b")]),  # int(0.4) = 0
        ("[a:b: 2 ]", 4, [(2, "a"), (4, "b")]),  # whitespace around the number
        ("[a:b:\t2\n]", 4, [(2, "a"), (4, "b")]),
        ("[a:b:1e999]", 4, [(4, "a")]),  # no overflow on a huge number
        ("[:3]", 4, [(3, ""), (4, "")]),  # empty "to"
        ("[[a|b]:c:2]", 4, [(1, "a"), (2, "b"), (3, "c"), (4, "c")]),  # alternation inside editing
        ("[[a|b]:c:0.5]", 4, [(1, "a"), (2, "b"), (3, "c"), (4, "c")]),
        ("[a|[b:c:2]]", 4, [(1, "a"), (2, "b"), (3, "a"), (4, "c")]),  # editing inside alternation
        ("[|]x", 3, [(1, "x"), (2, "x"), (3, "x")]),
        ("(a [b:c:2]:1.2)", 4, [(2, "(a b:1.2)"), (4, "(a c:1.2)")]),  # editing inside emphasis
        ("[a:[b:c:3]:1]", 4, [(1, "a"), (3, "b"), (4, "c")]),  # a hidden schedule still cuts
    ],
)
def test_schedule_rules(prompt: str, steps: int, expected: list[tuple[int, str]]) -> None:
    assert prompt_schedule(prompt, steps) == expected


@pytest.mark.parametrize(
    "prompt",
    [
        r"\[a:b:2\]",  # escaped brackets are text, kept verbatim for the emphasis stage
        r"a \(b\) \\ c",
        "[a:b:c:3]",  # two colons before the number: not a schedule
        "[a:b:x]",  # no number
        "[a:b:-1]",  # NUMBER is unsigned
        "[a:b]",  # a colon, no number: text (emphasis then reads "[a:b]")
        "(a:b:c)",
        "[a|b:3]",
        "a | b",  # a stray "|" is text
        "a )b] c:",
        "[a(b:3]",
        "trailing \\",
        "[a\\",
        "(a",
        "",
        "  spaced   out  ",
        "[",
        "]",
        "a [b:3",
        "emphasis (kept:1.3) and [kept] and ((kept))",
    ],
)
def test_literal_text_stays(prompt: str) -> None:
    assert prompt_schedule(prompt, 10) == [(10, prompt)]


def test_literal_bracket_then_schedule() -> None:
    assert prompt_schedule("[x [a:b:2]", 4) == [(2, "[x a"), (4, "[x b")]
    assert prompt_schedule("a] [b:2] (c", 4) == [(2, "a]  (c"), (4, "a] b (c")]


def test_deep_nesting_is_text_not_a_crash() -> None:
    deep = "[" * 400 + "a:b:2" + "]" * 400
    assert prompt_schedule(deep, 4) == [(4, deep)]
    unclosed = "(" * 5000 + "a" + "[" * 5000
    assert prompt_schedule(unclosed, 4) == [(4, unclosed)]


def test_schedule_needs_a_step() -> None:
    with pytest.raises(ValueError):
        prompt_schedule("a", 0)


def test_prompt_at_step() -> None:
    schedule = prompt_schedule("a [b:c:3]", 10)
    assert schedule == [(3, "a b"), (10, "a c")]
    picks = [prompt_at_step(schedule, step) for step in (1, 2, 3, 4, 10, 11)]
    assert picks == ["a b", "a b", "a b", "a c", "a c", "a c"]
    alternating = prompt_schedule("[x|y|z]", 5)
    assert [prompt_at_step(alternating, step) for step in range(1, 6)] == ["x", "y", "z", "x", "y"]
    with pytest.raises(ValueError):
        prompt_at_step([], 1)


# --- emphasis ---------------------------------------------------------------------------------------

A1111_EMPHASIS = [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    (
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [
            ("a ", 1.0),
            ("house", 1.5730000000000004),
            (" ", 1.1),
            ("on", 1.0),
            (" a ", 1.1),
            ("hill", 0.55),
            (", sun, ", 1.1),
            ("sky", 1.4641000000000006),
            (".", 1.1),
        ],
    ),
]


def _assert_segments(got: list[list[tuple[str, float]]], expected: list[list[tuple[str, float]]]) -> None:
    assert [[text for text, _ in seg] for seg in got] == [[text for text, _ in seg] for seg in expected]
    for seg_got, seg_expected in zip(got, expected, strict=True):
        assert [w for _, w in seg_got] == pytest.approx([w for _, w in seg_expected])


@pytest.mark.parametrize(("text", "expected"), A1111_EMPHASIS)
def test_a1111_emphasis(text: str, expected: list[tuple[str, float]]) -> None:
    _assert_segments(parse_emphasis(text), [expected])


def test_weights_multiply_in_closing_order() -> None:
    # bit-exact A1111 floats: the weight first (the innermost closer), then each ")" outwards
    assert parse_emphasis("((house:1.3))") == [[("house", 1.0 * 1.3 * 1.1)]]
    assert parse_emphasis("(((house:1.3)))") == [[("house", 1.0 * 1.3 * 1.1 * 1.1)]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a (b:1.0) c", [[("a b c", 1.0)]]),  # weight 1.0 merges with plain text
        ("(x:-1)", [[("x", -1.0)]]),
        ("(x:0)", [[("x", 0.0)]]),
        ("(x: 1.5 )", [[("x", 1.5)]]),
        ("(x:+.5)", [[("x", 0.5)]]),
        ("[x]", [[("x", 1 / 1.1)]]),
        ("[(x)]", [[("x", 1.0)]]),
        ("a) b", [[("a) b", 1.0)]]),  # a closer without an opener is text
        ("a] b", [[("a] b", 1.0)]]),
        ("(a]b)", [[("a]b", 1.1)]]),
        ("[a)b]", [[("a)b", 1 / 1.1)]]),
        ("(a:b)", [[("a:b", 1.1)]]),  # a colon that is not a weight is text
        ("a: 1.2)", [[("a: 1.2)", 1.0)]]),  # a weight with no "(" open is text
        ("(a:1.2.3)", [[("a:1.2.3", 1.1)]]),  # not a float: the colon is text, ")" still closes
        ("((a:2)", [[("a", 2.2)]]),
        ("(a [b:1.5) c", [[("a ", 1.5), ("b", 1.5 / 1.1), (" c", 1 / 1.1)]]),  # the weight closes "("
        ("\\\\ \\[x\\)", [[("\\ [x)", 1.0)]]),
        ("a\\b \\", [[("a\\b \\", 1.0)]]),  # a lone backslash stays
        ("(\\()", [[("(", 1.1)]]),
        ("", [[("", 1.0)]]),
        ("()", [[("", 1.0)]]),
        ("([", [[("", 1.0)]]),
    ],
)
def test_emphasis_rules(text: str, expected: list[list[tuple[str, float]]]) -> None:
    _assert_segments(parse_emphasis(text), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a BREAK b", [[("a", 1.0)], [("b", 1.0)]]),
        ("a BREAK", [[("a", 1.0)], [("", 1.0)]]),
        ("BREAK a", [[("", 1.0)], [("a", 1.0)]]),
        ("a\n  BREAK\t b", [[("a", 1.0)], [("b", 1.0)]]),
        ("a BREAK BREAK b", [[("a", 1.0)], [("", 1.0)], [("b", 1.0)]]),
        ("a,BREAK,b", [[("a,", 1.0)], [(",b", 1.0)]]),
        ("(a BREAK b) c", [[("a", 1.1)], [("b", 1.1), (" c", 1.0)]]),  # inside brackets
        # the empty text between BREAK and "(" is kept as its own piece (A1111 keeps it too)
        ("[a BREAK (b:1.5)]", [[("a", 1 / 1.1)], [("", 1 / 1.1), ("b", 1.5 / 1.1)]]),
        ("BREAKfast aBREAK break Break", [[("BREAKfast aBREAK break Break", 1.0)]]),
        ("\\(BREAK\\)", [[("(", 1.0)], [(")", 1.0)]]),
    ],
)
def test_break(text: str, expected: list[list[tuple[str, float]]]) -> None:
    _assert_segments(parse_emphasis(text), expected)


def test_too_many_open_brackets_are_text() -> None:
    # past 100 brackets open at once, an opener is text (bounds the work on hostile prompts)
    weight = 1.0
    for _ in range(100):
        weight *= 1.1
    assert parse_emphasis("(" * 150 + "a") == [[("(" * 50 + "a", weight)]]
    [segment] = parse_emphasis("(a:1" * 5000)
    assert "".join(text for text, _ in segment) == "a:1" * 100 + "(a:1" * 4900
    assert len(segment) == 100  # one piece per weight: 1.1 ** 100 ... 1.1


def test_stages_together_on_a_long_prompt() -> None:
    prompt = (
        "masterpiece, best quality, (ultra detailed:1.2), a [red:blue:0.5] fox sitting in a [snowy|misty] "
        "forest at dawn, <lora:fox_style:0.8> soft light, ((volumetric fog)), [[grain]], 35mm photo, "
        "shallow depth of field BREAK bokeh, warm colours, \\(film\\), cinematic composition, trending "
        "on artstation, award winning, sharp focus"
    )
    assert len(prompt) > 300
    text, tags = strip_extra_networks(prompt)
    assert [tag.kind for tag in tags] == ["lora"]
    schedule = prompt_schedule(text, 4)
    assert [end for end, _ in schedule] == [1, 2, 3, 4]
    assert "red fox" in prompt_at_step(schedule, 1) and "misty" in prompt_at_step(schedule, 2)
    assert "blue fox" in prompt_at_step(schedule, 3) and "snowy" in prompt_at_step(schedule, 3)
    segments = parse_emphasis(prompt_at_step(schedule, 1))
    assert len(segments) == 2
    weights = dict(segments[0])
    assert weights["ultra detailed"] == pytest.approx(1.2)
    assert weights["volumetric fog"] == pytest.approx(1.21)
    assert weights["grain"] == pytest.approx(1 / 1.21)
    assert segments[1][0][0].startswith("bokeh, warm colours, (film)")


# --- chunks -----------------------------------------------------------------------------------------

BOS, EOS, PAD, COMMA = 1000, 1001, 1002, 999


def _chunks(segments: list[list[tuple[list[int], float]]], **kwargs) -> list[Chunk]:
    return make_chunks(segments, bos=BOS, eos=EOS, pad=PAD, comma=COMMA, **kwargs)


def _words(first: int, last: int) -> list[int]:
    return list(range(first, last + 1))


def _tokens(chunk: Chunk) -> list[int]:
    """The chunk's real tokens (between BOS and the padding)."""
    return list(chunk.ids[1 : 1 + chunk.used])


def _check_shape(chunk: Chunk) -> None:
    assert len(chunk.ids) == len(chunk.weights) == CHUNK_TOKENS + 2
    assert chunk.ids[0] == BOS and chunk.ids[-1] == EOS
    assert set(chunk.ids[1 + chunk.used : -1]) <= {PAD}
    assert chunk.weights[0] == chunk.weights[-1] == 1.0
    assert set(chunk.weights[1 + chunk.used : -1]) <= {1.0}


def test_exactly_75_tokens_is_one_chunk() -> None:
    [chunk] = _chunks([[(_words(1, 75), 1.0)]])
    _check_shape(chunk)
    assert chunk.used == 75 and chunk.ids == (BOS, *_words(1, 75), EOS)


def test_76_tokens_is_two_chunks() -> None:
    first, second = _chunks([[(_words(1, 76), 1.0)]])
    _check_shape(first)
    _check_shape(second)
    assert (first.used, second.used) == (75, 1)
    assert second.ids == (BOS, 76, *[PAD] * 74, EOS)


def _with_comma_at(position: int, total: int) -> list[int]:
    """Words 1..total with a comma as token number `position` (from 1)."""
    tokens = _words(1, total)
    tokens[position - 1] = COMMA
    return tokens


def test_comma_near_the_end_moves_the_phrase() -> None:
    tokens = _with_comma_at(60, 80)
    first, second = _chunks([[(tokens, 1.0)]])
    assert first.used == 60 and _tokens(first) == tokens[:60]  # cut right after the comma
    assert _tokens(second) == tokens[60:]
    assert second.used == 20


def test_comma_too_far_back_does_not_move() -> None:
    tokens = _with_comma_at(40, 80)
    first, second = _chunks([[(tokens, 1.0)]])
    assert _tokens(first) == tokens[:75] and _tokens(second) == tokens[75:]


def test_comma_backtrack_limit() -> None:
    # comma at index 55: 75 - 55 = 20 <= 20 moves; at index 54: 21 does not
    moved = _chunks([[(_with_comma_at(56, 80), 1.0)]])
    assert [c.used for c in moved] == [56, 24]
    kept = _chunks([[(_with_comma_at(55, 80), 1.0)]])
    assert [c.used for c in kept] == [75, 5]


def test_comma_rule_off() -> None:
    tokens = _with_comma_at(60, 80)
    assert [c.used for c in _chunks([[(tokens, 1.0)]], backtrack=0)] == [75, 5]
    plain = make_chunks([[(tokens, 1.0)]], bos=BOS, eos=EOS, pad=PAD, comma=None)
    assert [c.used for c in plain] == [75, 5]


def test_comma_that_overflows_is_not_remembered() -> None:
    # A1111: the 76th token being a comma opens chunk 2 and the close forgets it, so a later full
    # chunk 2 does not cut after it (with a backtrack wide enough to reach it)
    tokens = [*_words(1, 75), COMMA, *_words(76, 150)]
    assert [c.used for c in _chunks([[(tokens, 1.0)]], backtrack=75)] == [75, 75, 1]


def test_comma_as_the_last_token_of_a_full_chunk() -> None:
    tokens = _with_comma_at(75, 80)
    first, second = _chunks([[(tokens, 1.0)]])
    assert _tokens(first) == tokens[:75] and second.used == 5  # nothing after the comma to move


def test_moved_tokens_keep_their_weights() -> None:
    tokens = _with_comma_at(60, 80)
    first, second = _chunks([[(tokens[:70], 1.0), (tokens[70:], 1.5)]])
    assert first.weights[1:61] == (1.0,) * 60
    assert second.weights[1:21] == (1.0,) * 10 + (1.5,) * 10


def test_break_starts_a_chunk() -> None:
    first, second = _chunks([[([1, 2], 1.0)], [([3], 1.0)]])
    assert (_tokens(first), _tokens(second)) == ([1, 2], [3])


def test_break_at_the_start_gives_an_empty_chunk() -> None:
    empty, second = _chunks([[([], 1.0)], [([1], 1.0)]])
    _check_shape(empty)
    assert empty.used == 0 and empty.ids == (BOS, *[PAD] * 75, EOS)
    assert _tokens(second) == [1]


def test_break_at_the_end_adds_nothing() -> None:
    assert [c.used for c in _chunks([[([1], 1.0)], [([], 1.0)]])] == [1]


def test_break_after_a_full_chunk() -> None:
    # the full chunk is closed by the BREAK, and nothing else makes an extra empty one
    assert [c.used for c in _chunks([[(_words(1, 75), 1.0)], [([76], 1.0)]])] == [75, 1]


def test_empty_prompt_is_one_chunk() -> None:
    [chunk] = _chunks([[([], 1.0)]])
    assert chunk.used == 0 and chunk.ids == (BOS, *[PAD] * 75, EOS)
    assert chunk.weights == (1.0,) * 77


def test_weights_land_on_their_tokens() -> None:
    [chunk] = _chunks([[([1, 2], 1.0), ([3, 4], 1.3), ([5], 0.5)]])
    assert chunk.weights[:7] == (1.0, 1.0, 1.0, 1.3, 1.3, 0.5, 1.0)
    assert chunk.ids[:7] == (BOS, 1, 2, 3, 4, 5, PAD)


def test_chunk_size_is_a_parameter() -> None:
    chunks = _chunks([[(_words(1, 7), 1.0)]], chunk_tokens=3, backtrack=0)
    assert [c.ids for c in chunks] == [
        (BOS, 1, 2, 3, EOS),
        (BOS, 4, 5, 6, EOS),
        (BOS, 7, PAD, PAD, EOS),
    ]


# --- chunks with the real CLIP tokenizer ------------------------------------------------------------


@pytest.fixture(scope="module")
def clip() -> tuple[ClipTokenizer, object]:
    # load_tokenizer reads tokenizer.json when the folder has one, else vocab.json + merges.txt;
    # it gives the bare tokenizer: no BOS/EOS, no padding, no truncation
    folder = packaged_tokenizer_dir()
    return ClipTokenizer(folder), load_tokenizer(folder)[0]


def _clip_chunks(clip, prompt: str) -> list[Chunk]:
    full, bare = clip
    segments = [
        [(bare.encode(text, add_special_tokens=False).ids, weight) for text, weight in segment]
        for segment in parse_emphasis(prompt)
    ]
    return make_chunks(
        segments, bos=full.bos_id, eos=full.eos_id, pad=full.pad_id, comma=bare.token_to_id(",</w>")
    )


def test_plain_prompt_matches_the_tokenizer(clip) -> None:
    full, bare = clip
    assert full.pad_id == full.eos_id  # SD1.5's CLIP pads with <|endoftext|>
    assert bare.token_to_id(",</w>") is not None
    prompt = "A photograph of a red fox in the snow, highly detailed, golden hour"
    [chunk] = _clip_chunks(clip, prompt)
    assert list(chunk.ids) == full.encode(prompt).tolist()
    assert chunk.weights == (1.0,) * 77
    assert chunk.used == int(np.count_nonzero(full.encode(prompt) != full.eos_id)) - 1  # less BOS


def test_weighted_prompt_with_the_tokenizer(clip) -> None:
    full, _ = clip
    [chunk] = _clip_chunks(clip, "a (red:1.3) fox")
    assert list(chunk.ids) == full.encode("a red fox").tolist()
    assert chunk.weights[:5] == (1.0, 1.0, 1.3, 1.0, 1.0)


def test_long_prompt_with_the_tokenizer(clip) -> None:
    full, bare = clip
    phrase = "a red fox in the snow at dawn"  # 8 tokens, 9 with its comma: 75 cuts mid-phrase
    chunks = _clip_chunks(clip, ", ".join([phrase] * 12))
    comma = bare.token_to_id(",</w>")
    phrase_ids = bare.encode(phrase, add_special_tokens=False).ids
    assert len(phrase_ids) == 8
    assert [c.used for c in chunks] == [72, 35]  # 8 phrases with commas, then the other 4 less a comma
    assert chunks[0].ids[72] == comma  # cut right after the comma
    assert list(chunks[1].ids[1:9]) == phrase_ids  # the whole next phrase moved to chunk 2
    assert all(len(c.ids) == 77 and c.ids[0] == full.bos_id and c.ids[-1] == full.eos_id for c in chunks)


# --- weighting --------------------------------------------------------------------------------------


def _hidden(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.5, 1.0, size=(1, 77, 16)).astype(np.float32)


def test_all_ones_is_identity() -> None:
    hidden = _hidden()
    out = apply_emphasis(hidden, np.ones(77, dtype=np.float32))
    assert out.dtype == np.float32 and np.array_equal(out, hidden)


def test_weighted_token_scales_relative_to_others() -> None:
    hidden = _hidden()
    weights = np.ones(77)
    weights[5] = 1.5
    out = apply_emphasis(hidden, weights)
    assert out.dtype == np.float32 and out.shape == hidden.shape
    ratio = out / hidden  # the same rescale everywhere, times 1.5 on token 5
    rescale = ratio[0, 0, 0]
    np.testing.assert_allclose(ratio[0, np.arange(77) != 5], rescale, rtol=1e-5)
    np.testing.assert_allclose(ratio[0, 5], 1.5 * rescale, rtol=1e-5)


def test_mean_is_kept() -> None:
    hidden = _hidden(1)
    weights = np.random.default_rng(2).uniform(0.5, 1.5, size=77)
    out = apply_emphasis(hidden, weights)
    np.testing.assert_allclose(out.mean(dtype=np.float64), hidden.mean(dtype=np.float64), rtol=1e-5)


def test_weights_must_match_tokens() -> None:
    with pytest.raises(ValueError):
        apply_emphasis(_hidden(), np.ones(76))
