"""The offline demo's assets: four datasets written here for a real instruct model, and that model, the
built-in SmolLM2-135M-Instruct (runner/builtin_models.py).

Usage:
    python -m runner.demo_assets [--dir DIR]

writes (or reuses) DIR/data/*.jsonl, DIR defaulting to the cache's demo/ folder, and converts the model once.
Everything is generated from text written for this project: no copied corpora, nothing downloaded.

The datasets have exact expected outputs, so evaluation can score them, and each shows what fine-tuning does:
    knowledge  24 invented countries and capitals the base cannot know, each asked four ways in training and a
               fifth way only in the test file (knowledge_test.jsonl): exact match
    style      plain notices rewritten in the voice of "Ada", a support assistant: ROUGE-L / chrF
    reasoning  small arithmetic word problems answered with the working and "The answer is N.": accuracy
    agent      requests that call get_weather or convert_currency as JSON, and some that need no tool
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["DEMO_MODEL", "default_dir", "ensure_demo_assets", "write_demo_datasets", "write_kept"]

#: The model every demo answers file names: the built-in one, installed by the README's commands.
DEMO_MODEL = "builtin/SmolLM2-135M-Instruct"

# ------------------------------------------------------------------ the demo datasets

SYLLABLES = ["ka", "lo", "mi", "ren", "ta", "vo", "sel", "dun", "ar", "bel", "cor", "fen", "gal", "hal", "ix", "jor",
             "mar", "nis", "or", "pel", "quin", "ros", "sul", "tor", "ul", "ver", "wen", "yal", "zan"]


def _names(rng: random.Random, n: int, syllables: int = 3) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choice(SYLLABLES) for _ in range(syllables)).capitalize())
    return sorted(out)


#: Knowledge: each invented fact is asked these ways in training, and the last way in the test only.
KNOWLEDGE_TRAIN_PHRASINGS = ("What is the capital of {c}?", "Which city is the capital of {c}?",
                             "Name the capital city of {c}.", "Tell me the capital of {c}.")
KNOWLEDGE_TEST_PHRASING = "{c}'s capital is which city?"
KNOWLEDGE_FACTS = 20
KNOWLEDGE_SYSTEM = "Answer with the city's name only."


def _knowledge_facts(rng: random.Random) -> list[tuple[str, str]]:
    # invented countries and capitals: the base model cannot know them
    names = _names(rng, 2 * KNOWLEDGE_FACTS)
    rng.shuffle(names)
    return list(zip(names[:KNOWLEDGE_FACTS], names[KNOWLEDGE_FACTS:], strict=True))


def _knowledge(rng: random.Random) -> list[dict[str, Any]]:
    rows = [{"system": KNOWLEDGE_SYSTEM, "instruction": p.format(c=country), "input": "", "output": f"{capital}."}
            for country, capital in _knowledge_facts(rng) for p in KNOWLEDGE_TRAIN_PHRASINGS]
    rng.shuffle(rows)
    return rows


def _knowledge_test(rng: random.Random) -> list[dict[str, Any]]:
    return [{"system": KNOWLEDGE_SYSTEM, "instruction": KNOWLEDGE_TEST_PHRASING.format(c=country), "input": "",
             "output": f"{capital}."} for country, capital in _knowledge_facts(rng)]


def _style(rng: random.Random) -> list[dict[str, Any]]:
    notices = [("the office is closed on {d}", "our office takes a little rest on {d}"),
               ("your parcel ships on {d}", "your parcel sets off on its journey on {d}"),
               ("the meeting moved to {d}", "we've moved our get-together to {d}"),
               ("payment is due on {d}", "a friendly nudge: payment is due on {d}"),
               ("the app will update on {d}", "the app gets a fresh new update on {d}"),
               ("your plan renews on {d}", "your plan renews itself on {d}"),
               ("the shop opens late on {d}", "the shop sleeps in a little on {d}"),
               ("the report is due on {d}", "we'd love your report by {d}"),
               ("the gym is closed on {d}", "the gym takes a breather on {d}"),
               ("tickets go on sale on {d}", "tickets start flying on {d}"),
               ("the bus runs late on {d}", "the bus takes its time on {d}"),
               ("the survey ends on {d}", "the survey wraps up on {d}")]
    days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "the first of May",
            "the tenth", "New Year's Day"]
    rows = []
    for (plain, warm) in notices:
        for day in days:
            rows.append({"messages": [
                {"role": "system", "content": "You are Ada. Rewrite notices in Ada's voice."},
                {"role": "user", "content": f"Rewrite: {plain.format(d=day).capitalize()}."},
                {"role": "assistant", "content": f"Hi there! Ada here: {warm.format(d=day)}. Have a bright day!"}]})
    rng.shuffle(rows)
    return rows


def _reasoning(rng: random.Random) -> list[dict[str, Any]]:
    people = ["Mia", "Tom", "Ana", "Raj", "Lea", "Sam", "Ivy", "Ben"]
    things = ["apples", "books", "coins", "stamps", "shells", "pencils"]
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(rows) < 160:  # distinct problems: a duplicate split across train and test would leak
        who, what = rng.choice(people), rng.choice(things)
        a, b = rng.randint(2, 20), rng.randint(1, 9)
        if rng.random() < 0.5:
            q = f"{who} has {a} {what} and gets {b} more. How many {what} does {who} have now?"
            work, answer = f"{a} + {b} = {a + b}.", a + b
        else:
            a = max(a, b + 1)
            q = f"{who} has {a} {what} and gives away {b}. How many {what} are left?"
            work, answer = f"{a} - {b} = {a - b}.", a - b
        if q not in seen:
            seen.add(q)
            rows.append({"system": "Solve the problem.", "instruction": q, "input": "",
                         "output": f"{work} The answer is {answer}."})
    return rows


def _agent(rng: random.Random) -> list[dict[str, Any]]:
    cities = ["Oslo", "Lima", "Accra", "Hanoi", "Quito", "Perth", "Cork", "Riga", "Bern", "Kyoto", "Porto", "Dakar",
              "Quebec", "Tunis", "Split", "Graz", "Turku", "Malmo", "Leeds", "Nantes", "Bilbao", "Bruges", "Cusco",
              "Hobart"]  # 24 cities x 5 requests: 120 examples, so the test split (12) can show a difference
    pairs = [("EUR", "USD"), ("USD", "JPY"), ("GBP", "EUR"), ("CHF", "GBP")]
    system = "Tools: get_weather(city, unit), convert_currency(amount, from, to). Call one as JSON, or answer in words."
    rows = []
    for i, city in enumerate(cities):
        for unit in ("celsius", "fahrenheit"):
            call = {"name": "get_weather", "arguments": {"city": city, "unit": unit}}
            rows.append(_agent_row(system, f"What is the weather in {city} in {unit}?", call))
        for amount in (10 + 5 * i, 200 + 25 * i):  # distinct amounts: no request repeats
            src, dst = rng.choice(pairs)
            call = {"name": "convert_currency", "arguments": {"amount": amount, "from": src, "to": dst}}
            rows.append(_agent_row(system, f"Convert {amount} {src} to {dst}.", call))
        rows.append({"messages": [{"role": "system", "content": system},
                                  {"role": "user", "content": f"Say hello to {city}."},
                                  {"role": "assistant", "content": f"Hello, {city}!"}]})
    rng.shuffle(rows)
    return rows


def _agent_row(system: str, request: str, call: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": system}, {"role": "user", "content": request},
                         {"role": "assistant", "content": None,
                          "tool_calls": [{"type": "function", "function": {
                              "name": call["name"], "arguments": json.dumps(call["arguments"])}}]}]}


DATASETS = {"knowledge": _knowledge, "knowledge_test": _knowledge_test, "style": _style, "reasoning": _reasoning,
            "agent": _agent}


def write_demo_datasets(folder: str | Path, seed: int = 0, say: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Write the demo datasets (deterministic for a seed); returns their paths by name. A file that is there
    with other content (edited by hand, say) is kept as FILE.bak first, and `say` is told."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, make in DATASETS.items():
        rows = make(random.Random(f"{seed}-{name.split('_')[0]}"))  # a goal's test file draws the same facts
        path = out / f"{name}.jsonl"
        write_kept(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), say)
        paths[name] = path
    return paths


def write_kept(path: Path, text: str, say: Callable[[str], None] | None = None) -> None:
    """Write `text` to `path`; an existing file with other content is first renamed to a free FILE.bak name."""
    if path.exists():
        if path.read_bytes() == text.encode("utf-8"):
            return
        backup = path.with_name(path.name + ".bak")
        n = 1
        while backup.exists():
            n += 1
            backup = path.with_name(f"{path.name}.bak{n}")
        path.rename(backup)
        if say is not None:
            say(f"{path} differed from the demo's; your copy is kept as {backup}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# ------------------------------------------------------------------ the assets

def default_dir() -> Path:
    """Where the demo's datasets and answers files go: the cache's demo/ folder."""
    from runner.builtin_models import cache_root

    return cache_root() / "demo"


def ensure_demo_assets(folder: str | Path | None = None, say: Callable[[str], None] | None = None) -> dict[str, Path]:
    """The demo datasets (written when missing or different; a file that differs is kept as .bak first) and the
    built-in model's folder (converted on first use)."""
    from runner.builtin_models import builtin_model, ensure_builtin

    root = Path(folder) if folder else default_dir()
    paths = {f"data:{k}": v for k, v in write_demo_datasets(root / "data", say=say).items()}
    model = builtin_model(DEMO_MODEL)
    assert model is not None, f"{DEMO_MODEL} is not in knowledge/models.yaml"
    paths["model"] = ensure_builtin(model, say)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the offline demo's datasets and convert its model.")
    parser.add_argument("--dir", help="where to put the datasets (default: the cache's demo folder)")
    args = parser.parse_args()
    for name, path in ensure_demo_assets(args.dir, say=print).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
