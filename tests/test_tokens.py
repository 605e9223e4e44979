from zi_isag_tool.tokens import HFTokenCounter, default_counter


def test_o200k_loads_offline_and_counts() -> None:
    counter = default_counter()
    assert counter.name == "o200k_base"
    assert counter.count("") == 0
    assert counter.count("hello world") == 2
    # Special-token text is counted as ordinary text, never as a control token.
    assert counter.count("<|endoftext|>") > 1
    assert counter.count_many(["a b", "", "héllo 世界"]) == [counter.count("a b"), 0, counter.count("héllo 世界")]


def test_hf_counter_wraps_a_tokenizer() -> None:
    class Whitespace:
        name_or_path = "ws"

        def __call__(self, texts, add_special_tokens=False, verbose=True):
            if isinstance(texts, str):
                return {"input_ids": texts.split()}
            return {"input_ids": [t.split() for t in texts]}

    counter = HFTokenCounter(Whitespace())
    assert counter.name == "ws"
    assert counter.count("a b c") == 3
    assert counter.count_many(["a", "b c"]) == [1, 2]
    assert counter.count_many([]) == []
