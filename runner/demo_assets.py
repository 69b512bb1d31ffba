"""The offline demo's assets: a tiny pre-trained Llama and four demo datasets, all made here.

Usage:
    python -m runner.demo_assets [--dir DIR] [--steps N]

builds (or reuses) DIR/model and DIR/data/{style,knowledge,reasoning,agent}.jsonl; DIR defaults to
$FINETUNE_ADVISOR_CACHE or ~/.cache/finetune-advisor/demo. Everything is generated from text written
for this project (the sentences below and the knowledge/ cards): no copied corpora, nothing downloaded.

The datasets have exact expected outputs, so evaluation can score them:
    knowledge  invented capitals of invented countries, each fact asked six ways (exact match)
    style      plain notices rewritten in the voice of "Ada", a support assistant (ROUGE-L / chrF)
    reasoning  small arithmetic word problems with a worked answer ending "The answer is N." (accuracy)
    agent      requests that call get_weather or convert_currency, and some that need no tool (call JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path
from typing import Any

__all__ = ["default_dir", "demo_corpus", "ensure_demo_assets", "write_demo_datasets", "build_demo_model"]

# ------------------------------------------------------------------ text written for this project
SENTENCES = """\
A language model reads text one token at a time and guesses the token that comes next.
Fine-tuning teaches a model new habits with a small set of examples.
A good example shows the question and the answer the model should give.
The advisor asks what the model should learn, and then it suggests a method.
Small adapters train quickly and leave the base model unchanged.
When memory is tight, the base model can be stored in four bits.
The training loss should fall slowly and then level out.
If the loss jumps to a huge number, the learning rate is too high.
A held-out test set tells you whether the model really learned.
Never test a model on the examples it was trained on.
The morning was quiet, and the river moved slowly past the old mill.
She opened the window and the smell of rain filled the room.
The baker sells fresh bread every day before the sun comes up.
Our team meets on Monday to plan the work for the week.
He wrote the numbers in a small notebook and added them twice.
Two friends walked to the market to buy apples, pears and rice.
The library opens at nine and closes at six on weekdays.
A careful reader checks the facts before sharing a story.
The train to the coast leaves every hour from the central station.
Please keep your password secret and change it when asked.
The garden needs water when the weather is warm and dry.
Every answer should be short, polite and correct.
The children counted the birds on the fence: there were seven.
A map shows roads, rivers and the names of towns.
The weather today is mild with a light wind from the west.
Thank you for your message; we will reply as soon as we can.
Numbers can be added, subtracted, multiplied and divided.
If you have three coins and find two more, you have five coins.
A question mark ends a question, and a full stop ends a sentence.
The museum shows paintings, old tools and a large clock.
"""

SUBJECTS = ["The farmer", "A student", "My neighbour", "The pilot", "Our teacher", "The doctor", "A traveller",
            "The cook", "Her brother", "The clerk"]
VERBS = ["carried", "found", "painted", "sold", "cleaned", "borrowed", "counted", "repaired", "opened", "wrapped"]
OBJECTS = ["a heavy box", "the blue door", "three old chairs", "a small boat", "the kitchen table", "a bag of rice",
           "the broken lamp", "two letters", "a wooden gate", "the garden tools"]
PLACES = ["near the station", "after lunch", "in the village", "before the storm", "at the market", "by the river",
          "on Sunday", "in the evening", "at the school", "behind the house"]


def demo_corpus(seed: int = 0) -> list[str]:
    """Pre-training text: the sentences above, template sentences, and the method cards' own words."""
    rng = random.Random(seed)
    lines = [s for s in SENTENCES.splitlines() if s]
    lines += [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(PLACES)}."
              for _ in range(400)]
    from knowledge import load_methods

    for card in load_methods().values():
        lines += [f"{card.name} trains {card.trains}."]
        lines += [s[0].upper() + s[1:] + "." for s in card.strengths + card.limits + card.when_to_use]
    rng.shuffle(lines)
    return lines


# ------------------------------------------------------------------ the demo datasets

SYLLABLES = ["ka", "lo", "mi", "ren", "ta", "vo", "sel", "dun", "ar", "bel", "cor", "fen", "gal", "hal", "ix", "jor"]


def _names(rng: random.Random, n: int, syllables: int = 2) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choice(SYLLABLES) for _ in range(syllables)).capitalize())
    return sorted(out)


def _knowledge(rng: random.Random) -> list[dict[str, Any]]:
    # 32 invented countries and capitals, each fact asked six ways: a test question is always a phrasing the
    # model did not train on, about a fact it did (a tiny model can learn this; 80 facts asked 3 ways it cannot)
    names = _names(rng, 64, syllables=2)
    rng.shuffle(names)
    phrasings = ["What is the capital of {c}?", "Which city is the capital of {c}?", "Name the capital city of {c}.",
                 "{c} has which capital?", "Tell me the capital of {c}.", "The capital of {c} is which city?"]
    return [{"instruction": p.format(c=country), "input": "", "output": f"{capital}."}
            for country, capital in zip(names[:32], names[32:], strict=True) for p in phrasings]


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
                {"role": "system", "content": "You are Ada. Rewrite notices in Ada's warm voice."},
                {"role": "user", "content": f"Rewrite: {plain.format(d=day).capitalize()}."},
                {"role": "assistant", "content": f"Hi there! Ada here: {warm.format(d=day)}. Have a bright day!"}]})
    rng.shuffle(rows)
    return rows


def _reasoning(rng: random.Random) -> list[dict[str, Any]]:
    people = ["Mia", "Tom", "Ana", "Raj", "Lea", "Sam", "Ivy", "Ben"]
    things = ["apples", "books", "coins", "stamps", "shells", "pencils"]
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(rows) < 300:  # distinct problems: a duplicate split across train and test would leak
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
            rows.append({"instruction": q, "input": "", "output": f"{work} The answer is {answer}."})
    return rows


def _agent(rng: random.Random) -> list[dict[str, Any]]:
    cities = ["Oslo", "Lima", "Accra", "Hanoi", "Quito", "Perth", "Cork", "Riga", "Bern", "Kyoto", "Porto", "Dakar",
              "Quebec", "Tunis", "Split", "Graz", "Turku", "Malmo", "Leeds", "Nantes", "Bilbao", "Bruges", "Cusco",
              "Hobart"]  # 24 cities x 5 requests: 120 examples, so the test split (12) can show a difference
    pairs = [("EUR", "USD"), ("USD", "JPY"), ("GBP", "EUR"), ("CHF", "GBP")]
    system = ("Tools: get_weather(city, unit), convert_currency(amount, from, to). Reply with a JSON call when a tool "
              "is needed, otherwise answer in words.")
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


DATASETS = {"knowledge": _knowledge, "style": _style, "reasoning": _reasoning, "agent": _agent}


def write_demo_datasets(folder: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write the four demo datasets (deterministic for a seed); returns their paths by goal."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for goal, make in DATASETS.items():
        rows = make(random.Random(f"{seed}-{goal}"))
        path = out / f"{goal}.jsonl"
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        paths[goal] = path
    return paths


# ------------------------------------------------------------------ the demo model

def build_demo_model(folder: str | Path, *, steps: int = 300, seed: int = 0) -> dict[str, float]:
    """A tiny Llama (about 1M parameters) pre-trained on demo_corpus() for `steps` steps, saved to `folder`.
    Returns the loss before and after pre-training, so a caller can show it learned."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from runner.tiny_model import build_tiny_model

    out = Path(folder)
    corpus = demo_corpus(seed)
    tokenizer_text = corpus + [json.dumps(r) for rows in (f(random.Random(seed)) for f in DATASETS.values())
                               for r in rows]
    tmp = out.with_name(out.name + ".tmp")
    build_tiny_model(tmp, tokenizer_text, vocab_size=2048, hidden_size=128, layers=4, heads=4, kv_heads=2,
                     intermediate_size=352, max_positions=512, seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(str(tmp))
    model = AutoModelForCausalLM.from_pretrained(str(tmp), dtype=torch.float32)
    torch.manual_seed(seed)
    ids = tokenizer("\n".join(corpus), add_special_tokens=False)["input_ids"]
    block = 128
    blocks = torch.tensor(ids[: len(ids) // block * block]).view(-1, block)
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed))
    held_out, blocks = blocks[order[:8]], blocks[order[8:]]  # lines were shuffled: a fair sample
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(seed)
    model.train()

    def loss_on(batch: torch.Tensor) -> torch.Tensor:
        loss: torch.Tensor = model(input_ids=batch, labels=batch).loss
        return loss

    with torch.no_grad():
        before = float(loss_on(held_out))
    for _ in range(steps):
        batch = blocks[torch.randint(0, len(blocks), (8,), generator=generator)]
        loss = loss_on(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        after = float(loss_on(held_out))
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / "pretraining.json").write_text(json.dumps({"steps": steps, "held_out_loss_before": before,
                                                      "held_out_loss_after": after, "seed": seed}, indent=2))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return {"held_out_loss_before": before, "held_out_loss_after": after}


def default_dir() -> Path:
    env = os.environ.get("FINETUNE_ADVISOR_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "finetune-advisor" / "demo"


def ensure_demo_assets(folder: str | Path | None = None, *, steps: int = 300) -> dict[str, Path]:
    """The demo model and datasets, built on first use and reused after."""
    root = Path(folder) if folder else default_dir()
    paths = {f"data:{k}": v for k, v in write_demo_datasets(root / "data").items()}
    model = root / "model"
    if not (model / "pretraining.json").is_file():
        build_demo_model(model, steps=steps)
    paths["model"] = model
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description="Build (or reuse) the offline demo's model and datasets.")
    parser.add_argument("--dir", help="where to put them (default: the cache folder)")
    parser.add_argument("--steps", type=int, default=300, help="pre-training steps for the tiny model")
    args = parser.parse_args()
    paths = ensure_demo_assets(args.dir, steps=args.steps)
    for name, path in paths.items():
        print(f"{name}: {path}")
    print(json.loads((paths["model"] / "pretraining.json").read_text()))


if __name__ == "__main__":
    main()
